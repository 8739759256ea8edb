//! Ember's derive macros, re-exported by `ember-core`: a plugin states each
//! hyperparameter once, as a struct field, and its registration in one attribute.
//!
//! - [`Hyperparams`](derive@Hyperparams): the `ParamSpec` list and the typed
//!   constructor from checked `Params`, plus one registry entry per `#[plugin(...)]`.
//! - [`ParamEnum`](derive@ParamEnum): a closed set of string values (`reduction`,
//!   `mode`) as a Rust enum.
//! - [`OptimizerState`](derive@OptimizerState): an optimizer's per-parameter state as a
//!   struct, saved and loaded under its field names (PyTorch's `exp_avg`, `step`, ...).
//!
//! The generated code names `::ember_core`, so a crate using these derives depends on
//! `ember-core`. See `ember_core::Hyperparams` for the attribute reference.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote, ToTokens};
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, Attribute, Data, DeriveInput, Error, Expr, ExprLit, ExprUnary, Fields, Ident, Lit, LitStr, Type,
    UnOp,
};

/// Derives `ember_core::Hyperparams` and registers the plugin. See the `ember_core`
/// documentation of the trait for the attributes.
#[proc_macro_derive(Hyperparams, attributes(param, plugin))]
pub fn derive_hyperparams(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    hyperparams(&input).unwrap_or_else(Error::into_compile_error).into()
}

/// Derives `ember_core::ParamEnum` (and `ParamValue`, `Display`, `FromStr`) for an enum
/// of unit variants: each variant is a choice named in snake_case, or
/// `#[param(name = "...")]`.
#[proc_macro_derive(ParamEnum, attributes(param))]
pub fn derive_param_enum(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    param_enum(&input).unwrap_or_else(Error::into_compile_error).into()
}

/// Derives `ember_core::OptimizerState` for a struct whose fields are buffers
/// (`Tensor`), optional buffers (`Option<Tensor>`) and scalars (`f64`, `u64`, ...),
/// each saved under its field name.
#[proc_macro_derive(OptimizerState)]
pub fn derive_optimizer_state(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    optimizer_state(&input).unwrap_or_else(Error::into_compile_error).into()
}

/// One hyperparameter field.
struct Param {
    ident: Ident,
    ty: Type,
    /// The config key (PyTorch's name).
    name: String,
    default: Option<Expr>,
    doc: String,
    check: Option<Expr>,
    optional: bool,
}

/// A field that is not a hyperparameter: `#[param(skip)]` (its `Default`) or
/// `#[param(skip = expr)]`.
struct Skipped {
    ident: Ident,
    value: Option<Expr>,
}

/// One `#[plugin(...)]` registration.
struct Plugin {
    kind: Ident,
    name: LitStr,
    summary: LitStr,
    lr: Option<Expr>,
    lr_doc: Option<LitStr>,
    defaults: Vec<(Ident, Expr)>,
    set: Vec<(Ident, Expr)>,
    build: Option<Expr>,
}

/// The fields of a struct with braces, or none for a unit struct (`struct Relu;`).
fn named_fields(input: &DeriveInput) -> syn::Result<Vec<&syn::Field>> {
    if !input.generics.params.is_empty() {
        return Err(Error::new(input.generics.span(), "ember derives do not support generic types"));
    }
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => Ok(f.named.iter().collect()),
            Fields::Unit => Ok(Vec::new()),
            Fields::Unnamed(_) => Err(Error::new(input.ident.span(), "expected a struct with named fields")),
        },
        _ => Err(Error::new(input.ident.span(), "expected a struct")),
    }
}

fn doc_of(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &attr.meta {
            if let Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) = &nv.value {
                lines.push(s.value().trim().to_string());
            }
        }
    }
    lines.into_iter().filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The `T` of `Option<T>`, if `ty` is an `Option`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(a) => match a.args.first()? {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

fn hyperparams(input: &DeriveInput) -> syn::Result<Tokens> {
    let ident = &input.ident;
    let mut params = Vec::new();
    let mut skipped = Vec::new();
    for field in named_fields(input)? {
        let fident = field.ident.clone().expect("named field");
        let mut name = fident.to_string();
        let (mut default, mut doc, mut check, mut skip) = (None, None, None, None);
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("param")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("default") {
                    default = Some(meta.value()?.parse::<Expr>()?);
                } else if meta.path.is_ident("doc") {
                    doc = Some(meta.value()?.parse::<LitStr>()?.value());
                } else if meta.path.is_ident("check") {
                    check = Some(meta.value()?.parse::<Expr>()?);
                } else if meta.path.is_ident("name") {
                    name = meta.value()?.parse::<LitStr>()?.value();
                } else if meta.path.is_ident("skip") {
                    skip =
                        Some(if meta.input.peek(syn::Token![=]) { Some(meta.value()?.parse::<Expr>()?) } else { None });
                } else {
                    return Err(meta.error("unknown key; expected default, doc, check, name or skip"));
                }
                Ok(())
            })?;
        }
        if let Some(value) = skip {
            skipped.push(Skipped { ident: fident, value });
            continue;
        }
        let doc = doc.unwrap_or_else(|| doc_of(&field.attrs));
        if doc.is_empty() {
            return Err(Error::new(
                fident.span(),
                "document the hyperparameter: a `///` comment or #[param(doc = \"...\")] (`ember plugins` shows it)",
            ));
        }
        let optional = option_inner(&field.ty).is_some();
        params.push(Param { ident: fident, ty: field.ty.clone(), name, default, doc, check, optional });
    }

    let plugins = input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("plugin"))
        .map(parse_plugin)
        .collect::<syn::Result<Vec<_>>>()?;

    let specs = params.iter().map(|p| spec_tokens(p, p.default.as_ref())).collect::<syn::Result<Vec<_>>>()?;
    let count = specs.len();
    let reads = params.iter().map(|p| {
        let (fident, ty, name) = (&p.ident, &p.ty, &p.name);
        let check = p.check.as_ref().map(|c| {
            if p.optional {
                quote! {
                    if let ::core::option::Option::Some(inner) = &value {
                        (#c)(inner).map_err(|rule| params.invalid(#name, rule))?;
                    }
                }
            } else {
                quote! { (#c)(&value).map_err(|rule| params.invalid(#name, rule))?; }
            }
        });
        quote! {
            let #fident: #ty = {
                let value = <#ty as ::ember_core::ParamValue>::read(params, #name)?;
                #check
                value
            };
        }
    });
    let field_names = params.iter().map(|p| &p.ident);
    let skipped_inits = skipped.iter().map(|s| {
        let f = &s.ident;
        match &s.value {
            Some(v) => quote! { #f: #v },
            None => quote! { #f: ::core::default::Default::default() },
        }
    });

    let mut registrations = Vec::new();
    for plugin in &plugins {
        registrations.push(registration(ident, plugin, &params, &skipped)?);
    }

    Ok(quote! {
        impl ::ember_core::Hyperparams for #ident {
            const PARAMS: &'static [::ember_core::ParamSpec] = &{
                let specs: [::ember_core::ParamSpec; #count] = [#(#specs),*];
                specs
            };

            fn from_params(params: &::ember_core::Params) -> ::ember_core::Result<Self> {
                #(#reads)*
                ::core::result::Result::Ok(#ident { #(#field_names,)* #(#skipped_inits,)* })
            }
        }
        #(#registrations)*
    })
}

fn spec_tokens(p: &Param, default: Option<&Expr>) -> syn::Result<Tokens> {
    let (ty, name, doc) = (&p.ty, &p.name, &p.doc);
    let value_ty = quote! { <#ty as ::ember_core::ParamValue>::TYPE };
    let default = match default {
        None if p.optional => quote! { ::ember_core::DefaultValue::None },
        None => quote! { ::ember_core::DefaultValue::Required },
        // An `Option` float with a default keeps `null` as `None` (batch norm's momentum).
        Some(e) if p.optional && is_number(e) => {
            quote! { ::ember_core::DefaultValue::nullable(#value_ty, (#e) as f64) }
        }
        Some(e) => default_tokens(e, &value_ty)?,
    };
    Ok(quote! {
        ::ember_core::ParamSpec { name: #name, ty: #value_ty, default: #default, doc: #doc }
    })
}

fn is_number(e: &Expr) -> bool {
    match e {
        Expr::Lit(ExprLit { lit: Lit::Int(_) | Lit::Float(_), .. }) => true,
        Expr::Unary(ExprUnary { op: UnOp::Neg(_), expr, .. }) => is_number(expr),
        Expr::Group(g) => is_number(&g.expr),
        Expr::Paren(p) => is_number(&p.expr),
        _ => false,
    }
}

fn default_tokens(e: &Expr, ty: &Tokens) -> syn::Result<Tokens> {
    Ok(match e {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => quote! { ::ember_core::DefaultValue::Str(#s) },
        Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => quote! { ::ember_core::DefaultValue::Bool(#b) },
        e if is_number(e) => quote! { ::ember_core::DefaultValue::number(#ty, (#e) as f64) },
        Expr::Array(a) if a.elems.iter().all(is_number) => {
            let items = a.elems.iter();
            let items2 = a.elems.iter();
            quote! { ::ember_core::DefaultValue::list(#ty, &[#((#items) as f64),*], &[#((#items2) as i64),*]) }
        }
        Expr::Path(p) if p.path.is_ident("None") => quote! { ::ember_core::DefaultValue::None },
        other => {
            return Err(Error::new(
                other.span(),
                "a default is a number, a string, true/false, a list of numbers or None",
            ))
        }
    })
}

fn parse_plugin(attr: &Attribute) -> syn::Result<Plugin> {
    let mut kind = None;
    let mut name = None;
    let mut summary = None;
    let mut plugin = Plugin {
        kind: format_ident!("x"),
        name: LitStr::new("", Span::call_site()),
        summary: LitStr::new("", Span::call_site()),
        lr: None,
        lr_doc: None,
        defaults: Vec::new(),
        set: Vec::new(),
        build: None,
    };
    attr.parse_nested_meta(|meta| {
        let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
        match key.as_str() {
            "activation" | "loss" | "optimizer" | "scheduler" | "regularizer" | "layer" | "metric" => {
                if kind.is_some() {
                    return Err(meta.error("a registration has one kind"));
                }
                kind = Some(meta.path.get_ident().cloned().expect("ident"));
                name = Some(meta.value()?.parse::<LitStr>()?);
            }
            "summary" => summary = Some(meta.value()?.parse::<LitStr>()?),
            "lr" => plugin.lr = Some(meta.value()?.parse::<Expr>()?),
            "lr_doc" => plugin.lr_doc = Some(meta.value()?.parse::<LitStr>()?),
            "build" => plugin.build = Some(meta.value()?.parse::<Expr>()?),
            "default" | "set" => {
                let mut pairs = Vec::new();
                meta.parse_nested_meta(|inner| {
                    let field = inner.path.get_ident().cloned().ok_or_else(|| inner.error("expected a field name"))?;
                    pairs.push((field, inner.value()?.parse::<Expr>()?));
                    Ok(())
                })?;
                if key == "default" {
                    plugin.defaults.extend(pairs);
                } else {
                    plugin.set.extend(pairs);
                }
            }
            _ => {
                return Err(meta.error(
                    "unknown key; expected KIND = \"name\" (activation, loss, optimizer, scheduler, regularizer, layer, metric), summary, lr, lr_doc, default(..), set(..) or build",
                ))
            }
        }
        Ok(())
    })?;
    plugin.kind = kind.ok_or_else(|| {
        Error::new(attr.span(), "name the kind and the registry name: #[plugin(optimizer = \"my_optimizer\", ...)]")
    })?;
    plugin.name = name.expect("set with kind");
    plugin.summary = summary.ok_or_else(|| {
        Error::new(attr.span(), "add summary = \"one line saying what it computes\" (`ember plugins` shows it)")
    })?;
    if plugin.kind == "optimizer" && plugin.lr.is_none() {
        return Err(Error::new(
            attr.span(),
            "an optimizer declares its default learning rate: lr = 1e-3 (the driver hands the current rate to each step)",
        ));
    }
    if plugin.kind != "optimizer" && (plugin.lr.is_some() || plugin.lr_doc.is_some()) {
        return Err(Error::new(attr.span(), "only optimizers take lr"));
    }
    Ok(plugin)
}

fn registration(ident: &Ident, plugin: &Plugin, params: &[Param], skipped: &[Skipped]) -> syn::Result<Tokens> {
    for (field, expr) in &plugin.defaults {
        if !params.iter().any(|p| p.ident == *field || *field == p.name) {
            return Err(Error::new(expr.span(), format!("`{field}` is not a hyperparameter of {ident}")));
        }
    }
    for (field, expr) in &plugin.set {
        if !skipped.iter().any(|s| s.ident == *field) {
            return Err(Error::new(
                expr.span(),
                format!("`{field}` is not a #[param(skip)] field of {ident}; set(..) fills skipped fields"),
            ));
        }
    }
    let mut specs = Vec::new();
    if let Some(lr) = &plugin.lr {
        let doc = plugin.lr_doc.as_ref().map_or_else(|| quote! { ::ember_core::optim::LR_DOC }, |d| quote! { #d });
        specs.push(quote! { ::ember_core::ParamSpec::float("lr", (#lr) as f64, #doc) });
    }
    for p in params {
        let over = plugin.defaults.iter().find(|(f, _)| *f == p.ident || *f == p.name).map(|(_, e)| e);
        specs.push(spec_tokens(p, over.or(p.default.as_ref()))?);
    }
    let count = specs.len();
    let entry = match plugin.kind.to_string().as_str() {
        "activation" => quote! { ActivationEntry },
        "loss" => quote! { LossEntry },
        "optimizer" => quote! { OptimizerEntry },
        "scheduler" => quote! { SchedulerEntry },
        "layer" => quote! { LayerEntry },
        "metric" => quote! { MetricEntry },
        _ => quote! { RegularizerEntry },
    };
    let (name, summary) = (&plugin.name, &plugin.summary);
    let lr_check = plugin.lr.as_ref().map(|_| quote! { ::ember_core::optim::learning_rate(params)?; });
    let sets = plugin.set.iter().map(|(f, e)| quote! { plugin.#f = #e; });
    // The hook runs inside an impl block, so `build = Self::with_context` resolves.
    let hook = plugin.build.as_ref().map(|b| {
        quote! {
            impl #ident {
                fn __ember_build(
                    plugin: Self,
                    ctx: &::ember_core::BuildContext,
                ) -> ::ember_core::Result<Self> {
                    (#b)(plugin, ctx)
                }
            }
        }
    });
    let build = plugin.build.as_ref().map(|_| quote! { let plugin = #ident::__ember_build(plugin, ctx)?; });
    Ok(quote! {
        const _: () = {
            #hook
            const PARAMS: [::ember_core::ParamSpec; #count] = [#(#specs),*];
            ::ember_core::inventory::submit! {
                ::ember_core::#entry {
                    name: #name,
                    summary: #summary,
                    params: &PARAMS,
                    module: ::core::module_path!(),
                    build: |params, ctx| {
                        let _ = ctx;
                        #lr_check
                        #[allow(unused_mut)]
                        let mut plugin = <#ident as ::ember_core::Hyperparams>::from_params(params)?;
                        #(#sets)*
                        #build
                        ::core::result::Result::Ok(::std::boxed::Box::new(plugin))
                    },
                }
            }
        };
    })
}

fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn param_enum(input: &DeriveInput) -> syn::Result<Tokens> {
    let ident = &input.ident;
    let Data::Enum(data) = &input.data else {
        return Err(Error::new(ident.span(), "ParamEnum is for enums of unit variants"));
    };
    let mut variants = Vec::new();
    let mut names = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(Error::new(v.span(), "ParamEnum variants carry no data"));
        }
        let mut name = snake_case(&v.ident.to_string());
        for attr in v.attrs.iter().filter(|a| a.path().is_ident("param")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    name = meta.value()?.parse::<LitStr>()?.value();
                    Ok(())
                } else {
                    Err(meta.error("expected name = \"...\""))
                }
            })?;
        }
        variants.push(v.ident.clone());
        names.push(name);
    }
    Ok(quote! {
        impl ::ember_core::ParamEnum for #ident {
            const CHOICES: &'static [&'static str] = &[#(#names),*];

            fn as_str(&self) -> &'static str {
                match self { #(#ident::#variants => #names,)* }
            }

            fn from_choice(s: &str) -> ::core::option::Option<Self> {
                match s { #(#names => ::core::option::Option::Some(#ident::#variants),)* _ => ::core::option::Option::None }
            }
        }

        impl ::ember_core::ParamValue for #ident {
            const TYPE: ::ember_core::ParamType = ::ember_core::ParamType::Choice(<#ident as ::ember_core::ParamEnum>::CHOICES);

            fn read(params: &::ember_core::Params, key: &str) -> ::ember_core::Result<Self> {
                ::ember_core::params::read_choice(params, key)
            }
        }

        impl ::core::fmt::Display for #ident {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(<#ident as ::ember_core::ParamEnum>::as_str(self))
            }
        }

        impl ::core::str::FromStr for #ident {
            type Err = ::ember_core::Error;

            fn from_str(s: &str) -> ::ember_core::Result<Self> {
                ::ember_core::params::parse_choice(::core::stringify!(#ident), s)
            }
        }
    })
}

fn optimizer_state(input: &DeriveInput) -> syn::Result<Tokens> {
    let ident = &input.ident;
    let mut required = Vec::new();
    let mut optional = Vec::new();
    let mut scalars = Vec::new();
    for field in named_fields(input)? {
        let f = field.ident.clone().expect("named field");
        let ty = &field.ty;
        let is_tensor =
            |t: &Type| matches!(t, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Tensor"));
        if is_tensor(ty) {
            required.push(f);
        } else if option_inner(ty).is_some_and(is_tensor) {
            optional.push(f);
        } else {
            scalars.push((f, ty.clone()));
        }
    }
    let req_names: Vec<String> = required.iter().map(Ident::to_string).collect();
    let opt_names: Vec<String> = optional.iter().map(Ident::to_string).collect();
    let scalar_idents: Vec<&Ident> = scalars.iter().map(|(f, _)| f).collect();
    let scalar_names: Vec<String> = scalar_idents.iter().map(|f| f.to_string()).collect();
    let scalar_tys = scalars.iter().map(|(_, t)| t.to_token_stream());
    Ok(quote! {
        impl ::ember_core::OptimizerState for #ident {
            const BUFFERS: &'static [&'static str] = &[#(#req_names),*];
            const OPTIONAL_BUFFERS: &'static [&'static str] = &[#(#opt_names),*];
            const SCALARS: &'static [&'static str] = &[#(#scalar_names),*];

            fn save(&self) -> ::ember_core::State {
                let mut state = ::ember_core::State::new();
                #(state.tensors.insert(::std::string::String::from(#req_names), self.#required.clone());)*
                #(if let ::core::option::Option::Some(t) = &self.#optional {
                    state.tensors.insert(::std::string::String::from(#opt_names), t.clone());
                })*
                #(state.scalars.insert(::std::string::String::from(#scalar_names), self.#scalar_idents as f64);)*
                state
            }

            fn load(state: &::ember_core::State) -> ::ember_core::Result<Self> {
                ::ember_core::optim::check_state_keys::<Self>(state)?;
                ::core::result::Result::Ok(#ident {
                    #(#required: state.tensors[#req_names].clone(),)*
                    #(#optional: state.tensors.get(#opt_names).cloned(),)*
                    #(#scalar_idents: state.scalars[#scalar_names] as #scalar_tys,)*
                })
            }
        }
    })
}

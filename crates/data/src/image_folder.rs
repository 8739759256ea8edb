//! Images in one sub-directory per class, like torchvision's `ImageFolder`:
//! [`ImageFolder::open`] lists `root/CLASS/.../IMAGE` and serves the images as
//! `f32 [N, C, H, W]` batches with `i64 [N]` class indices ([`Dataset`]).
//!
//! The layout and order follow torchvision: the classes are `root`'s sub-directories,
//! sorted by name (byte order, as Python sorts `str`), class k being the k-th; each class
//! directory is walked recursively (symbolic links followed, a link back up the tree
//! skipped), its directories in the order of their paths and the files of each directory
//! by name (torchvision's `sorted(os.walk(...))`, then `sorted(fnames)`). Files ending in
//! `.png`, `.jpg` or `.jpeg` (any case) are images; names starting with `.` (hidden files
//! and directories, such as `.ipynb_checkpoints`, which torchvision would take for a
//! class) and other files are skipped, except the image formats torchvision reads and
//! Ember does not (`.bmp`, `.ppm`, `.pgm`, `.tif`, `.tiff`, `.webp`), which are an error
//! rather than silently leaving examples out.
//!
//! Each image goes through the pipeline that torchvision's usual transforms apply:
//! - decoded by content, not by name: PNG (any bit depth: 16-bit samples keep their high
//!   byte, palettes expand to RGB) or baseline/progressive JPEG (8-bit grey, RGB, CMYK;
//!   12/16-bit grey keeps its high byte). The EXIF orientation is not applied (PIL does
//!   not either). JPEG pixels can differ from PIL's (libjpeg-turbo) by a level or two
//!   (another IDCT and colour conversion);
//! - converted to [`ImageSpec::channels`] channels as PIL's `convert` does: alpha is
//!   dropped, grey is replicated to RGB, RGB becomes grey with ITU-R 601-2 luma
//!   `L = R 299/1000 + G 587/1000 + B 114/1000`, rounded (PIL's fixed-point form);
//!   CMYK becomes RGB as `R = (255 - K) - C (255 - K) / 255` (rounded; likewise G from M
//!   and B from Y), PIL's conversion;
//! - resized to [`ImageSpec::size`] by bilinear interpolation with half-pixel centres
//!   (PyTorch's `interpolate(mode="bilinear", align_corners=False)`, without antialias),
//!   kept as `f32`. torchvision's `Resize` on a PIL image antialiases when it shrinks and
//!   rounds to 8 bits, so resized values differ slightly from it (most when shrinking
//!   by a large factor); an image already of that size is not resampled;
//! - scaled to [0, 1] (`/ 255`, `ToTensor`) and normalised per channel,
//!   `(x - mean[c]) / std[c]` (`Normalize`), in `f32` as torchvision computes them.
//!
//! [`Dataset::train_batch`] then augments each example as `RandomCrop(size,
//! padding=crop_padding)` followed by `RandomHorizontalFlip()` placed before `ToTensor`
//! would: the padding is black (0 before normalisation, `(0 - mean) / std` after). The
//! draws come from a generator seeded by (seed, epoch, example index), so a batch is the
//! same whatever the batch's other examples, the thread count or a resumed run.
//! [`Dataset::batch`] (evaluation) never augments.
//!
//! Images are read from disk for every batch, decoded in parallel (rayon), nothing is
//! cached. Only the first image is read by [`ImageFolder::open`] (it fixes the channel
//! count and, without `size`, the image size); a damaged file or an image of another size
//! is an error, naming the file, when a batch reaches it.

use std::ffi::{OsStr, OsString};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ember_core::rng::Rng;
use ember_core::{Error, IoContext, Result};
use rayon::prelude::*;

use crate::Dataset;

/// The file name extensions (lower case) of the images read.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Image formats torchvision's `ImageFolder` reads but Ember does not: an error, since
/// skipping them would leave examples out of the dataset.
const UNSUPPORTED: [&str; 6] = ["bmp", "ppm", "pgm", "tif", "tiff", "webp"];

/// The most pixels an image may have (16384 x 16384), so a damaged or hostile header
/// cannot ask for an allocation beyond memory.
const MAX_PIXELS: u64 = 1 << 28;

/// The largest `crop_padding`, far beyond any image, so the crop arithmetic cannot
/// overflow.
const MAX_PADDING: usize = 1 << 30;

/// How to turn the images into tensors, and how to augment them for training.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSpec {
    /// Output size (height, width): every image is resized to exactly this
    /// (torchvision's `Resize((height, width))`, bilinear). `None`: images keep their
    /// size, which must be the same for every image (the first image's); an image of
    /// another size is an error naming it that suggests setting `size`.
    pub size: Option<(usize, usize)>,
    /// Per-channel mean subtracted after scaling to [0, 1]; one value per channel, or one
    /// value for all. Empty: no normalisation (then `std` must be empty too).
    pub mean: Vec<f64>,
    /// Per-channel divisor after subtracting `mean`, each > 0; as many values as `mean`
    /// gives (one per channel, or one for all).
    pub std: Vec<f64>,
    /// Training augmentation: random crop of the image's size from the image padded with
    /// this many black pixels on each side (torchvision's `RandomCrop(size,
    /// padding=crop_padding)`); 0: no crop. Only in [`Dataset::train_batch`].
    pub crop_padding: usize,
    /// Training augmentation: mirror left-right with probability 0.5 (torchvision's
    /// `RandomHorizontalFlip()`), after the crop. Only in [`Dataset::train_batch`].
    pub flip: bool,
    /// Seed of the augmentation draws (with the epoch and each example's index).
    pub seed: u64,
    /// Output channels: 1 (grey) or 3 (RGB); every image is converted to that count.
    /// `None`: from the first image (grey or grey + alpha: 1; RGB, RGBA, palette, CMYK:
    /// 3). torchvision's default loader always converts to RGB, i.e. `Some(3)`.
    pub channels: Option<usize>,
}

impl Default for ImageSpec {
    /// Images kept at their (common) size, no normalisation, no augmentation, seed 0,
    /// channels from the first image.
    fn default() -> Self {
        ImageSpec {
            size: None,
            mean: Vec::new(),
            std: Vec::new(),
            crop_padding: 0,
            flip: false,
            seed: 0,
            channels: None,
        }
    }
}

/// Images in `root/CLASS/.../IMAGE` (see the [module](self) documentation): example i is
/// the i-th file of [`ImageFolder::files`], its target the index of its class in
/// [`ImageFolder::classes`].
#[derive(Clone, Debug)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    files: Vec<(PathBuf, i64)>,
    spec: ImageSpec,
    channels: usize,
    height: usize,
    width: usize,
    /// Per-channel (mean, std) as `f32`, expanded to `channels` values; `None`: none.
    norm: Option<(Vec<f32>, Vec<f32>)>,
}

impl ImageFolder {
    /// Lists the classes and images under `root` and reads the first image (for the
    /// channel count and, without `spec.size`, the image size). Errors: an invalid
    /// `spec`; `root` missing or not a directory; no class sub-directory; a class
    /// directory without images (every such class is named); an unreadable first image.
    pub fn open(root: &Path, spec: ImageSpec) -> Result<Self> {
        check_spec(&spec)?;
        let layout = "give the directory that holds one sub-directory per class (root/CLASS/IMAGE.png)";
        match std::fs::metadata(root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::input(format!(
                    "image folder {}: is a file, not a directory; {layout}",
                    root.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::input(format!("image folder {}: does not exist; {layout}", root.display())))
            }
            Err(e) => return Err(Error::io(root, "read the image folder", e)),
        }

        // The classes: sub-directories (symbolic links followed), sorted by name bytes.
        let mut class_dirs: Vec<(OsString, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(root).at(root, "list the image folder")? {
            let entry = entry.at(root, "list the image folder")?;
            let name = entry.file_name();
            if hidden(&name) {
                continue;
            }
            let path = entry.path();
            if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                class_dirs.push((name, path));
            }
        }
        class_dirs.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
        if class_dirs.is_empty() {
            return Err(Error::input(format!(
                "image folder {}: has no class sub-directories; put each class's images in a directory of its own: {layout}",
                root.display()
            )));
        }

        let mut classes = Vec::with_capacity(class_dirs.len());
        let mut files = Vec::new();
        let mut empty = Vec::new();
        for (label, (name, dir)) in class_dirs.iter().enumerate() {
            let name = name.to_string_lossy().into_owned();
            let mut found = Vec::new();
            let mut ancestors = vec![std::fs::canonicalize(dir).at(dir, "resolve the class directory")?];
            walk(dir, Path::new(""), &mut ancestors, &mut found)?;
            // torchvision's order: directories by path, then the files of each by name.
            found.sort_by(|a, b| {
                (a.dir.as_os_str().as_encoded_bytes(), a.name.as_encoded_bytes())
                    .cmp(&(b.dir.as_os_str().as_encoded_bytes(), b.name.as_encoded_bytes()))
            });
            if found.is_empty() {
                empty.push(name.clone());
            }
            files.extend(found.into_iter().map(|f| (f.path, label as i64)));
            classes.push(name);
        }
        if !empty.is_empty() {
            let (noun, them) = if empty.len() == 1 { ("directory", "it") } else { ("directories", "them") };
            return Err(Error::input(format!(
                "image folder {}: no images (.png, .jpg, .jpeg) in the class {noun} {}; add images to {them} or remove {them}",
                root.display(),
                empty.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", "),
            )));
        }
        if files.len() > u32::MAX as usize {
            return Err(Error::input(format!(
                "image folder {}: {} images, more than the {} a dataset can index; split the folder",
                root.display(),
                files.len(),
                u32::MAX
            )));
        }

        // The first image fixes the channel count and, without `size`, the image size.
        let first = &files[0].0;
        let image = read_image(first)?;
        let channels = spec.channels.unwrap_or(if image.channels <= 2 { 1 } else { 3 });
        let (height, width) = spec.size.unwrap_or((image.height, image.width));
        let norm = normalisation(&spec, channels)?;
        Ok(ImageFolder { root: root.to_path_buf(), classes, files, spec, channels, height, width, norm })
    }

    /// The folder the images were found in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The class names (the class directories' names), sorted; target k is `classes()[k]`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Every image's path (under `root`) and class index, in example order.
    pub fn files(&self) -> &[(PathBuf, i64)] {
        &self.files
    }

    /// The spec the folder was opened with.
    pub fn spec(&self) -> &ImageSpec {
        &self.spec
    }

    /// The images' channel count (C): 1 or 3.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The images' size (H, W).
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// Image `i`, decoded, converted, resized and normalised, as `f32 [C, H, W]` on the
    /// CPU (never augmented).
    pub fn image(&self, i: usize) -> Result<Tensor> {
        let data = self.load(i)?;
        Ok(Tensor::from_vec(data, (self.channels, self.height, self.width), &Device::Cpu)?)
    }

    /// Image `i` as `C * H * W` values (channel-major), not augmented.
    fn load(&self, i: usize) -> Result<Vec<f32>> {
        let (path, _) = self.files.get(i).ok_or_else(|| {
            Error::input(format!(
                "image folder {}: index {i} is out of range for its {} images",
                self.root.display(),
                self.files.len()
            ))
        })?;
        let image = read_image(path)?;
        if self.spec.size.is_none() && (image.height, image.width) != (self.height, self.width) {
            return Err(Error::input(format!(
                "{}: the image is {}x{} (height x width), but {} is {}x{}; without `size` every image must have the \
                 first one's size: set `size` to resize every image to one size (e.g. size = ({}, {}))",
                path.display(),
                image.height,
                image.width,
                self.files[0].0.display(),
                self.height,
                self.width,
                self.height,
                self.width
            )));
        }
        let (h0, w0) = (image.height, image.width);
        let pixels = convert(image, self.channels);
        let mut out = resample(&pixels, (h0, w0), self.channels, (self.height, self.width));
        let plane = self.height * self.width;
        for (c, values) in out.chunks_exact_mut(plane).enumerate() {
            for v in values {
                *v = self.scale(*v, c);
            }
        }
        Ok(out)
    }

    /// A value in [0, 255] scaled to [0, 1] and normalised for channel `c`.
    fn scale(&self, v: f32, c: usize) -> f32 {
        let x = v / 255.0;
        match &self.norm {
            Some((mean, std)) => (x - mean[c]) / std[c],
            None => x,
        }
    }

    /// `image` (`C * H * W` values of example `index`) randomly cropped from its padded
    /// self and flipped, with the draws of (seed, epoch, index): crop top, crop left, flip.
    fn augment(&self, image: Vec<f32>, index: u32, epoch: u64) -> Vec<f32> {
        let seed = ember_core::rng::at(ember_core::rng::at(self.spec.seed, epoch), index as u64);
        let mut rng = Rng::new(seed);
        let p = self.spec.crop_padding;
        let span = 2 * p as u64 + 1;
        let top = (rng.next_u64() % span) as i64;
        let left = (rng.next_u64() % span) as i64;
        let flip = self.spec.flip && rng.uniform() < 0.5;
        if p == 0 && !flip {
            return image;
        }
        let (h, w) = (self.height, self.width);
        let mut out = Vec::with_capacity(image.len());
        for (c, plane) in image.chunks_exact(h * w).enumerate() {
            let pad = self.scale(0.0, c);
            for y in 0..h {
                // Row y of the crop is row top + y of the padded image: row top + y - p here.
                let sy = y as i64 + top - p as i64;
                for x in 0..w {
                    let xc = if flip { w - 1 - x } else { x };
                    let sx = xc as i64 + left - p as i64;
                    let inside = (0..h as i64).contains(&sy) && (0..w as i64).contains(&sx);
                    out.push(if inside { plane[sy as usize * w + sx as usize] } else { pad });
                }
            }
        }
        out
    }

    /// The examples at `indices`, decoded in parallel, augmented for `epoch` when given.
    fn gather(&self, indices: &[u32], epoch: Option<u64>) -> Result<(Tensor, Tensor)> {
        let images: Vec<Vec<f32>> = indices
            .par_iter()
            .map(|&i| -> Result<Vec<f32>> {
                let image = self.load(i as usize)?;
                Ok(match epoch {
                    Some(epoch) => self.augment(image, i, epoch),
                    None => image,
                })
            })
            .collect::<Vec<Result<Vec<f32>>>>()
            // In batch order: the error reported is the first failing image's.
            .into_iter()
            .collect::<Result<Vec<Vec<f32>>>>()?;
        let (c, h, w) = (self.channels, self.height, self.width);
        let mut data = Vec::with_capacity(indices.len() * c * h * w);
        for image in &images {
            data.extend_from_slice(image);
        }
        // Every index was checked by `load`.
        let targets: Vec<i64> = indices.iter().map(|&i| self.files[i as usize].1).collect();
        let n = indices.len();
        Ok((Tensor::from_vec(data, (n, c, h, w), &Device::Cpu)?, Tensor::from_vec(targets, n, &Device::Cpu)?))
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    /// `f32 [N, C, H, W]` images (not augmented) and `i64 [N]` class indices.
    fn batch(&self, indices: &[u32]) -> Result<(Tensor, Tensor)> {
        self.gather(indices, None)
    }

    /// As [`Dataset::batch`], each example randomly cropped and flipped as the spec says,
    /// with draws from (seed, epoch, example index).
    fn train_batch(&self, indices: &[u32], epoch: u64) -> Result<(Tensor, Tensor)> {
        if self.spec.crop_padding == 0 && !self.spec.flip {
            return self.gather(indices, None);
        }
        self.gather(indices, Some(epoch))
    }

    /// The class indices of every file, without decoding an image.
    fn all_targets(&self) -> Result<Tensor> {
        let labels: Vec<i64> = self.files.iter().map(|(_, c)| *c).collect();
        Ok(Tensor::from_vec(labels, self.files.len(), &candle_core::Device::Cpu)?)
    }
}

/// Checks what can be checked before the images are seen.
fn check_spec(spec: &ImageSpec) -> Result<()> {
    if let Some((h, w)) = spec.size {
        if h == 0 || w == 0 {
            return Err(Error::input(format!(
                "image folder: size = ({h}, {w}) is invalid: height and width must be >= 1"
            )));
        }
    }
    if let Some(c) = spec.channels {
        if c != 1 && c != 3 {
            return Err(Error::input(format!(
                "image folder: channels = {c} is invalid: must be 1 (grey) or 3 (RGB); alpha is always dropped"
            )));
        }
    }
    if spec.crop_padding > MAX_PADDING {
        return Err(Error::input(format!(
            "image folder: crop_padding = {} is invalid: must be at most {MAX_PADDING} (pixels on each side)",
            spec.crop_padding
        )));
    }
    match (spec.mean.is_empty(), spec.std.is_empty()) {
        (true, false) => {
            return Err(Error::input(
                "image folder: `std` is given without `mean`; give both (e.g. mean = [0.5], std = [0.5]) or neither",
            ))
        }
        (false, true) => {
            return Err(Error::input(
                "image folder: `mean` is given without `std`; give both (e.g. mean = [0.5], std = [0.5]) or neither",
            ))
        }
        _ => {}
    }
    for (c, &m) in spec.mean.iter().enumerate() {
        if !m.is_finite() {
            return Err(Error::input(format!("image folder: mean[{c}] = {m} is invalid: must be a finite number")));
        }
    }
    for (c, &s) in spec.std.iter().enumerate() {
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::input(format!("image folder: std[{c}] = {s} is invalid: must be > 0 (and finite)")));
        }
    }
    Ok(())
}

/// The spec's mean and std expanded to `channels` values each, or `None`.
fn normalisation(spec: &ImageSpec, channels: usize) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
    if spec.mean.is_empty() {
        return Ok(None);
    }
    let expand = |name: &str, values: &[f64]| -> Result<Vec<f32>> {
        match values.len() {
            1 => Ok(vec![values[0] as f32; channels]),
            n if n == channels => Ok(values.iter().map(|&v| v as f32).collect()),
            n => Err(Error::input(format!(
                "image folder: `{name}` has {n} values but the images have {channels} channel{}; give one value per \
                 channel, or one value for all{}",
                if channels == 1 { "" } else { "s" },
                if n == 3 && channels == 1 { " (or set channels = 3 to read the images as RGB)" } else { "" }
            ))),
        }
    };
    Ok(Some((expand("mean", &spec.mean)?, expand("std", &spec.std)?)))
}

/// An image file found in a class directory.
struct Found {
    /// The directory holding it, relative to the class directory ("" for the class
    /// directory itself).
    dir: PathBuf,
    name: OsString,
    path: PathBuf,
}

/// Whether a file or directory name is hidden (starts with `.`).
fn hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// A file name's extension, lower case.
fn extension(name: &OsStr) -> Option<String> {
    Path::new(name).extension()?.to_str().map(|e| e.to_ascii_lowercase())
}

/// Collects the images under `dir` (at `rel` below the class directory) into `found`;
/// `ancestors` are the canonical paths of the directories being walked, so a symbolic
/// link back up the tree is not followed forever.
fn walk(dir: &Path, rel: &Path, ancestors: &mut Vec<PathBuf>, found: &mut Vec<Found>) -> Result<()> {
    for entry in std::fs::read_dir(dir).at(dir, "list the directory")? {
        let entry = entry.at(dir, "list the directory")?;
        let name = entry.file_name();
        if hidden(&name) {
            continue;
        }
        let path = entry.path();
        let ext = extension(&name);
        let is_image = ext.as_deref().is_some_and(|e| EXTENSIONS.contains(&e));
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            // A broken symbolic link: an error if it names an image, else skipped.
            Err(e) if is_image => return Err(Error::io(&path, "read", e)),
            Err(_) => continue,
        };
        if meta.is_dir() {
            let canonical = std::fs::canonicalize(&path).at(&path, "resolve the directory")?;
            if ancestors.contains(&canonical) {
                continue;
            }
            ancestors.push(canonical);
            walk(&path, &rel.join(&name), ancestors, found)?;
            ancestors.pop();
        } else if is_image {
            found.push(Found { dir: rel.to_path_buf(), name, path });
        } else if let Some(ext) = ext.as_deref().filter(|e| UNSUPPORTED.contains(e)) {
            return Err(Error::input(format!(
                "{}: .{ext} images are not supported (Ember reads PNG and JPEG); convert the folder's .{ext} files to \
                 PNG (e.g. `mogrify -format png *.{ext}`) or move them out of the folder",
                path.display()
            )));
        }
    }
    Ok(())
}

/// A decoded image: `height x width` pixels of `channels` interleaved 8-bit samples
/// (1: grey, 2: grey + alpha, 3: RGB, 4: RGBA).
struct Decoded {
    height: usize,
    width: usize,
    channels: usize,
    pixels: Vec<u8>,
}

/// Reads and decodes the image at `path`; errors name the file.
fn read_image(path: &Path) -> Result<Decoded> {
    let bytes = std::fs::read(path).at(path, "read")?;
    decode(&bytes).map_err(|msg| Error::corrupt(path, msg))
}

/// Decodes PNG or JPEG bytes, told apart by their signatures.
fn decode(bytes: &[u8]) -> std::result::Result<Decoded, String> {
    let image = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes)?
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        decode_jpeg(bytes)?
    } else {
        return Err("not a readable PNG or JPEG image: its content starts with neither signature (is it an image, \
                    and if so in another format? re-save it as PNG or JPEG, or remove it)"
            .into());
    };
    if image.height == 0 || image.width == 0 || image.pixels.len() != image.height * image.width * image.channels {
        return Err(format!(
            "not a readable PNG or JPEG image: the decoder returned {} bytes for {}x{} pixels of {} channels",
            image.pixels.len(),
            image.height,
            image.width,
            image.channels
        ));
    }
    Ok(image)
}

/// Decodes PNG or JPEG bytes (told apart by content) to `(channels, height, width,
/// pixels)`: `height x width` pixels of interleaved 8-bit samples, 1 (grey) or 3 (RGB)
/// channels, any alpha channel dropped (PIL's `convert("L")` / `convert("RGB")`). The
/// Parquet table reader's image columns use it; the error says what is wrong, the caller
/// names the image.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
pub(crate) fn decode_image(bytes: &[u8]) -> std::result::Result<(usize, usize, usize, Vec<u8>), String> {
    let image = decode(bytes)?;
    let (height, width) = (image.height, image.width);
    let channels = if image.channels >= 3 { 3 } else { 1 };
    Ok((channels, height, width, convert(image, channels)))
}

/// The error for an image with more than [`MAX_PIXELS`] pixels.
fn too_large(width: u64, height: u64) -> String {
    format!(
        "the image is {width}x{height} pixels (width x height), more than the {MAX_PIXELS} pixels an image may have"
    )
}

fn decode_png(bytes: &[u8]) -> std::result::Result<Decoded, String> {
    let damaged = |e: png::DecodingError| format!("not a readable PNG image (damaged or truncated?): {e}");
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(damaged)?;
    let (width, height) = (reader.info().width as u64, reader.info().height as u64);
    if width * height > MAX_PIXELS {
        return Err(too_large(width, height));
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(damaged)?;
    if info.bit_depth != png::BitDepth::Eight {
        return Err(format!("not a readable PNG image: {:?} bit samples after expansion", info.bit_depth));
    }
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("not a readable PNG image: its palette was not expanded".into()),
    };
    buf.truncate(info.buffer_size());
    Ok(Decoded { height: info.height as usize, width: info.width as usize, channels, pixels: buf })
}

fn decode_jpeg(bytes: &[u8]) -> std::result::Result<Decoded, String> {
    let damaged = |e: jpeg_decoder::Error| format!("not a readable JPEG image (damaged or truncated?): {e}");
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(damaged)?;
    let info = decoder.info().ok_or("not a readable JPEG image: no frame header")?;
    let (width, height) = (info.width as u64, info.height as u64);
    if width * height > MAX_PIXELS {
        return Err(too_large(width, height));
    }
    let raw = decoder.decode().map_err(damaged)?;
    // The header read again after decoding, as the decoder reports it then.
    let info = decoder.info().unwrap_or(info);
    let (channels, pixels) = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => (1, raw),
        // Native-endian 16-bit samples: the high byte.
        jpeg_decoder::PixelFormat::L16 => {
            (1, raw.chunks_exact(2).map(|s| (u16::from_ne_bytes([s[0], s[1]]) >> 8) as u8).collect())
        }
        jpeg_decoder::PixelFormat::RGB24 => (3, raw),
        // The decoder returns CMYK (Adobe's inverted storage undone); RGB as PIL converts.
        jpeg_decoder::PixelFormat::CMYK32 => {
            (3, raw.chunks_exact(4).flat_map(|p| cmyk_to_rgb(p[0], p[1], p[2], p[3])).collect())
        }
    };
    Ok(Decoded { height: info.height as usize, width: info.width as usize, channels, pixels })
}

/// PIL's CMYK to RGB: `R = (255 - K) - C (255 - K) / 255`, the product rounded.
fn cmyk_to_rgb(c: u8, m: u8, y: u8, k: u8) -> [u8; 3] {
    let nk = 255 - k as u32;
    let ink = |v: u8| {
        // PIL's MULDIV255: a * b / 255, rounded.
        let t = v as u32 * nk + 128;
        ((t >> 8) + t) >> 8
    };
    [(nk - ink(c)) as u8, (nk - ink(m)) as u8, (nk - ink(y)) as u8]
}

/// PIL's RGB to grey (ITU-R 601-2 luma, in its fixed-point form, rounded).
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// The image's pixels with `channels` (1 or 3) samples each, as PIL's `convert` makes them.
fn convert(image: Decoded, channels: usize) -> Vec<u8> {
    let n = image.channels;
    if n == channels {
        return image.pixels;
    }
    let mut out = Vec::with_capacity(image.pixels.len() / n * channels);
    for p in image.pixels.chunks_exact(n) {
        match (n >= 3, channels) {
            (false, 1) => out.push(p[0]),
            (false, _) => out.extend_from_slice(&[p[0]; 3]),
            (true, 1) => out.push(luma(p[0], p[1], p[2])),
            (true, _) => out.extend_from_slice(&p[..3]),
        }
    }
    out
}

/// For each of `dst` output samples, the two source samples and the second's weight for
/// bilinear resampling from `src` samples with half-pixel centres (align_corners=False;
/// a source coordinate below 0 is clamped to 0, as PyTorch does).
fn taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f32 / dst as f32;
    (0..dst)
        .map(|i| {
            let x = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (x as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            let weight = if i1 == i0 { 0.0 } else { x - i0 as f32 };
            (i0, i1, weight)
        })
        .collect()
}

/// Interleaved `h0 x w0 x c` 8-bit pixels as `c x h x w` `f32` values in [0, 255],
/// bilinearly resampled when the sizes differ.
fn resample(pixels: &[u8], (h0, w0): (usize, usize), c: usize, (h, w): (usize, usize)) -> Vec<f32> {
    let mut out = vec![0f32; c * h * w];
    if (h0, w0) == (h, w) {
        for (k, p) in pixels.chunks_exact(c).enumerate() {
            for (ch, &v) in p.iter().enumerate() {
                out[ch * h * w + k] = v as f32;
            }
        }
        return out;
    }
    let rows = taps(h0, h);
    let cols = taps(w0, w);
    let px = |y: usize, x: usize, ch: usize| pixels[(y * w0 + x) * c + ch] as f32;
    for ch in 0..c {
        for (y, &(y0, y1, ly)) in rows.iter().enumerate() {
            for (x, &(x0, x1, lx)) in cols.iter().enumerate() {
                let top = (1.0 - lx) * px(y0, x0, ch) + lx * px(y0, x1, ch);
                let bottom = (1.0 - lx) * px(y1, x0, ch) + lx * px(y1, x1, ch);
                out[(ch * h + y) * w + x] = (1.0 - ly) * top + ly * bottom;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use candle_core::DType;

    use super::*;

    /// A 6x4 (width x height) 8-bit greyscale baseline JPEG of the values 0, 10, ..., 230
    /// (row-major), made by libjpeg at quality 100 with optimised Huffman tables; libjpeg
    /// decodes it to exactly those values.
    const GREY_JPEG: [u8; 166] = [
        0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0xff,
        0xc0, 0x00, 0x0b, 0x08, 0x00, 0x04, 0x00, 0x06, 0x01, 0x01, 0x11, 0x00, 0xff, 0xc4, 0x00, 0x14, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0xff, 0xc4,
        0x00, 0x1e, 0x10, 0x00, 0x00, 0x04, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x03, 0x09, 0x44, 0x02, 0x05, 0x08, 0x16, 0x27, 0x52, 0x65, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01,
        0x00, 0x00, 0x3f, 0x00, 0x4c, 0xa9, 0xc1, 0x12, 0x53, 0xce, 0xdf, 0x8b, 0x10, 0x35, 0x2d, 0xcc, 0xb3, 0x62,
        0xf8, 0xa3, 0xff, 0xd9,
    ];

    /// A 3x2 RGB baseline JPEG (YCbCr 4:4:4, quality 100, libjpeg) of the flat colour
    /// (200, 100, 50), which libjpeg decodes exactly.
    const RGB_JPEG: [u8; 267] = [
        0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0xff,
        0xdb, 0x00, 0x43, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0xff, 0xc0, 0x00, 0x11,
        0x08, 0x00, 0x02, 0x00, 0x03, 0x03, 0x01, 0x11, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xff, 0xc4, 0x00,
        0x14, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x06, 0xff, 0xc4, 0x00, 0x14, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xc4, 0x00, 0x14, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0xff, 0xc4, 0x00, 0x14, 0x11, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xda, 0x00, 0x0c, 0x03,
        0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3f, 0x00, 0x3e, 0x2b, 0xcd, 0x83, 0xff, 0xd9,
    ];

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let dir = std::env::temp_dir().join(format!("ember-image-folder-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }

        /// Writes `bytes` to `rel` (below the directory), creating its parents.
        fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
            let path = self.0.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// An 8-bit PNG of `width x height` pixels of `color`.
    fn encode_png(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, width, height);
            enc.set_color(color);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().unwrap();
            writer.write_image_data(data).unwrap();
            writer.finish().unwrap();
        }
        out
    }

    /// 24 grey levels `start, start + step, ...` (4 rows of 6).
    fn levels(start: usize, step: usize) -> Vec<u8> {
        (0..24).map(|k| (start + k * step) as u8).collect()
    }

    /// A 6x4 greyscale PNG of `levels(start, step)`.
    fn grey_png(start: usize, step: usize) -> Vec<u8> {
        encode_png(6, 4, png::ColorType::Grayscale, &levels(start, step))
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    fn error<T>(r: Result<T>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    fn spec() -> ImageSpec {
        ImageSpec::default()
    }

    #[test]
    fn classes_files_and_labels_follow_torchvision_order() {
        let dir = TempDir::new();
        let img = grey_png(0, 1);
        dir.write("Bird/1.png", &img);
        dir.write("cat/z.png", &img);
        dir.write("cat/b.png", &img);
        dir.write("cat/a.png", &img);
        dir.write("cat/sub/a.png", &img);
        dir.write("cat/sub/deeper/c.jpg", &GREY_JPEG);
        dir.write("cat/notes.txt", b"not an image");
        dir.write("cat/.hidden.png", b"skipped: hidden");
        dir.write("cat/.ipynb_checkpoints/x.png", b"skipped: in a hidden directory");
        dir.write("dog/x.PNG", &img);
        dir.write("readme.txt", b"a file, not a class");
        dir.write(".cache/x.png", &img);
        let folder = ImageFolder::open(dir.path(), spec()).unwrap();
        assert_eq!(folder.classes().to_vec(), vec!["Bird", "cat", "dog"]);
        let files: Vec<(String, i64)> = folder
            .files()
            .iter()
            .map(|(p, label)| (p.strip_prefix(dir.path()).unwrap().to_string_lossy().replace('\\', "/"), *label))
            .collect();
        let expected: Vec<(String, i64)> = [
            ("Bird/1.png", 0),
            // The class directory's files by name, then each sub-directory's (os.walk order).
            ("cat/a.png", 1),
            ("cat/b.png", 1),
            ("cat/z.png", 1),
            ("cat/sub/a.png", 1),
            ("cat/sub/deeper/c.jpg", 1),
            ("dog/x.PNG", 2),
        ]
        .iter()
        .map(|&(p, l)| (p.to_string(), l))
        .collect();
        assert_eq!(files, expected);
        assert_eq!(folder.len(), 7);
        assert_eq!((folder.channels(), folder.size()), (1, (4, 6)));
        let (_, y) = folder.batch(&[6, 0, 2, 5]).unwrap();
        assert_eq!(y.dtype(), DType::I64);
        assert_eq!(y.to_vec1::<i64>().unwrap(), vec![2i64, 0, 1, 1]);
    }

    #[test]
    fn errors_name_the_folder_the_class_or_the_file() {
        let dir = TempDir::new();
        let img = grey_png(0, 1);
        let e = error(ImageFolder::open(&dir.path().join("missing"), spec()));
        assert!(e.contains("missing: does not exist"), "{e}");
        let file = dir.write("file.txt", b"x");
        let e = error(ImageFolder::open(&file, spec()));
        assert!(e.contains("file.txt: is a file, not a directory"), "{e}");
        dir.write("flat/0.png", &img);
        std::fs::remove_file(dir.path().join("flat/0.png")).unwrap();
        let e = error(ImageFolder::open(&dir.path().join("flat"), spec()));
        assert!(e.contains("has no class sub-directories"), "{e}");

        dir.write("empty/cls/0.png", &img);
        dir.write("empty/zebra/notes.txt", b"no images here");
        dir.write("empty/yak/.hidden.png", &img);
        let e = error(ImageFolder::open(&dir.path().join("empty"), spec()));
        assert!(e.contains(r#"no images (.png, .jpg, .jpeg) in the class directories "yak", "zebra""#), "{e}");

        dir.write("bmp/cls/0.png", &img);
        dir.write("bmp/cls/1.bmp", b"BM");
        let e = error(ImageFolder::open(&dir.path().join("bmp"), spec()));
        assert!(e.contains("1.bmp: .bmp images are not supported"), "{e}");

        // The first image is read by `open`: a truncated one fails there.
        dir.write("truncated/cls/0.png", &img[..20]);
        let e = error(ImageFolder::open(&dir.path().join("truncated"), spec()));
        assert!(e.contains("0.png: not a readable PNG image"), "{e}");

        // Later images are read by the batches that use them.
        dir.write("corrupt/cls/0.png", &img);
        dir.write("corrupt/cls/1.png", b"not an image at all");
        let folder = ImageFolder::open(&dir.path().join("corrupt"), spec()).unwrap();
        folder.batch(&[0]).unwrap();
        let e = error(folder.batch(&[0, 1]));
        assert!(e.contains("1.png: not a readable PNG or JPEG image"), "{e}");
        let e = error(folder.train_batch(&[1], 0));
        assert!(e.contains("1.png: not a readable PNG or JPEG image"), "{e}");
        let e = error(folder.batch(&[2]));
        assert!(e.contains("index 2 is out of range for its 2 images"), "{e}");

        // Without `size`, every image must have the first one's size.
        dir.write("sizes/cls/0.png", &img);
        dir.write("sizes/cls/1.png", &encode_png(2, 2, png::ColorType::Grayscale, &[0, 1, 2, 3]));
        let folder = ImageFolder::open(&dir.path().join("sizes"), spec()).unwrap();
        let e = error(folder.batch(&[0, 1]));
        assert!(e.contains("1.png: the image is 2x2 (height x width), but"), "{e}");
        assert!(e.contains("0.png is 4x6") && e.contains("set `size`"), "{e}");
        let sized = ImageSpec { size: Some((4, 6)), ..spec() };
        let folder = ImageFolder::open(&dir.path().join("sizes"), sized).unwrap();
        assert_eq!(folder.batch(&[0, 1]).unwrap().0.dims4().unwrap(), (2, 1, 4, 6));

        // The spec (the grey images have 1 channel).
        let root = dir.path().join("sizes");
        let bad = [
            (ImageSpec { channels: Some(2), ..spec() }, "channels = 2 is invalid: must be 1 (grey) or 3 (RGB)"),
            (ImageSpec { size: Some((0, 3)), ..spec() }, "size = (0, 3) is invalid"),
            (ImageSpec { mean: vec![0.5], std: vec![0.0], ..spec() }, "std[0] = 0 is invalid: must be > 0"),
            (ImageSpec { mean: vec![0.5], ..spec() }, "`mean` is given without `std`"),
            (ImageSpec { std: vec![0.5], ..spec() }, "`std` is given without `mean`"),
            (
                ImageSpec { mean: vec![0.5; 3], std: vec![0.5; 3], ..spec() },
                "`mean` has 3 values but the images have 1 channel; give one value per channel",
            ),
        ];
        for (spec, message) in bad {
            let e = error(ImageFolder::open(&root, spec));
            assert!(e.contains(message), "{e}");
        }
    }

    #[test]
    fn batches_hold_the_pixels_scaled_to_0_1() {
        let dir = TempDir::new();
        let rgb: Vec<u8> = (0..72).map(|k| (k * 3 + 1) as u8).collect();
        let grey = levels(2, 7);
        let rgba: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 9]).collect();
        dir.write("a/0.png", &encode_png(6, 4, png::ColorType::Rgb, &rgb));
        dir.write("b/0.png", &encode_png(6, 4, png::ColorType::Grayscale, &grey));
        dir.write("b/1.png", &encode_png(6, 4, png::ColorType::Rgba, &rgba));
        // Channels from the first image: RGB.
        let folder = ImageFolder::open(dir.path(), spec()).unwrap();
        assert_eq!(folder.channels(), 3);
        let (x, y) = folder.batch(&[1, 0, 2]).unwrap();
        assert_eq!(x.dtype(), DType::F32);
        assert_eq!(x.dims4().unwrap(), (3, 3, 4, 6));
        assert_eq!(y.to_vec1::<i64>().unwrap(), vec![1i64, 0, 1]);
        let v = values(&x);
        for c in 0..3 {
            for k in 0..24 {
                // Grey replicated to RGB; RGB as is; RGBA without its alpha.
                assert_eq!(v[c * 24 + k], grey[k] as f32 / 255.0);
                assert_eq!(v[72 + c * 24 + k], rgb[k * 3 + c] as f32 / 255.0);
                assert_eq!(v[144 + c * 24 + k], rgb[k * 3 + c] as f32 / 255.0);
            }
        }
        assert_eq!(values(&folder.image(0).unwrap()), v[72..144].to_vec());
        assert_eq!(folder.image(0).unwrap().dims3().unwrap(), (3, 4, 6));
        assert!(folder.batch(&[]).unwrap().0.dims4().unwrap() == (0, 3, 4, 6));

        // Grey output: RGB through PIL's luma.
        let folder = ImageFolder::open(dir.path(), ImageSpec { channels: Some(1), ..spec() }).unwrap();
        let v = values(&folder.image(0).unwrap());
        assert_eq!(v.len(), 24);
        for (x, p) in v.iter().zip(rgb.chunks_exact(3)) {
            // Rounded (PIL's fixed-point weights are within 0.003 of these).
            let luma = (299.0 * p[0] as f64 + 587.0 * p[1] as f64 + 114.0 * p[2] as f64) / 1000.0;
            assert!((*x as f64 * 255.0 - luma).abs() <= 0.51, "{} vs {luma}", x * 255.0);
        }
        assert_eq!(values(&folder.image(1).unwrap()), grey.iter().map(|&g| g as f32 / 255.0).collect::<Vec<_>>());
    }

    #[test]
    fn jpeg_images_are_decoded_by_content() {
        let dir = TempDir::new();
        dir.write("grey/cls/0.jpg", &GREY_JPEG);
        // A JPEG named .png is read as a JPEG.
        dir.write("grey/cls/1.png", &GREY_JPEG);
        let folder = ImageFolder::open(&dir.path().join("grey"), spec()).unwrap();
        assert_eq!((folder.channels(), folder.size()), (1, (4, 6)));
        let v = values(&folder.batch(&[0, 1]).unwrap().0);
        for (k, x) in v.iter().enumerate() {
            let expected = ((k % 24) * 10) as f32;
            assert!((x * 255.0 - expected).abs() <= 3.0, "{k}: {} vs {expected}", x * 255.0);
        }
        dir.write("rgb/cls/0.jpeg", &RGB_JPEG);
        let folder = ImageFolder::open(&dir.path().join("rgb"), spec()).unwrap();
        assert_eq!((folder.channels(), folder.size()), (3, (2, 3)));
        let v = values(&folder.image(0).unwrap());
        for (c, expected) in [200.0f32, 100.0, 50.0].into_iter().enumerate() {
            for x in &v[c * 6..(c + 1) * 6] {
                assert!((x * 255.0 - expected).abs() <= 3.0, "channel {c}: {} vs {expected}", x * 255.0);
            }
        }
        // Truncated in the middle of the entropy-coded data: an error, or (a decoder may
        // fill in the rest) an image; never a panic.
        dir.write("cut/cls/0.jpg", &GREY_JPEG[..GREY_JPEG.len() / 2]);
        if let Err(e) = ImageFolder::open(&dir.path().join("cut"), spec()) {
            assert!(e.to_string().contains("0.jpg: not a readable JPEG image"), "{e}");
        }
    }

    #[test]
    fn resizing_is_bilinear_with_half_pixel_centres() {
        let dir = TempDir::new();
        dir.write("h/cls/0.png", &encode_png(2, 2, png::ColorType::Grayscale, &[0, 255, 0, 255]));
        let h = dir.path().join("h");
        // 1-D [0, 255] at source positions -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped).
        let folder = ImageFolder::open(&h, ImageSpec { size: Some((4, 4)), ..spec() }).unwrap();
        let row: [f32; 4] = [0.0, 0.25, 0.75, 1.0];
        assert_eq!(values(&folder.image(0).unwrap()), row.repeat(4));
        // Down the other axis: rows [0, 0] and [255, 255] to 4 x 3.
        dir.write("v/cls/0.png", &encode_png(2, 2, png::ColorType::Grayscale, &[0, 0, 255, 255]));
        let folder = ImageFolder::open(&dir.path().join("v"), ImageSpec { size: Some((4, 3)), ..spec() }).unwrap();
        let v = values(&folder.image(0).unwrap());
        let expected: Vec<f32> = row.iter().flat_map(|&r| [r; 3]).collect();
        assert_eq!(v, expected);
        // The same size: no resampling.
        let folder = ImageFolder::open(&h, ImageSpec { size: Some((2, 2)), ..spec() }).unwrap();
        assert_eq!(values(&folder.image(0).unwrap()), vec![0.0, 1.0, 0.0, 1.0]);
        let unsized_ = ImageFolder::open(&h, spec()).unwrap();
        assert_eq!(values(&unsized_.image(0).unwrap()), vec![0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn normalisation_is_per_channel() {
        let dir = TempDir::new();
        let grey = levels(3, 10);
        dir.write("cls/0.png", &grey_png(3, 10));
        let folder = ImageFolder::open(dir.path(), ImageSpec { mean: vec![0.5], std: vec![0.25], ..spec() }).unwrap();
        let v = values(&folder.image(0).unwrap());
        for (x, g) in v.iter().zip(&grey) {
            assert_eq!(*x, (*g as f32 / 255.0 - 0.5) / 0.25);
        }
        let (mean, std) = ([0.1, 0.2, 0.3], [0.5, 1.0, 2.0]);
        let spec = ImageSpec { channels: Some(3), mean: mean.to_vec(), std: std.to_vec(), ..spec() };
        let folder = ImageFolder::open(dir.path(), spec).unwrap();
        let v = values(&folder.image(0).unwrap());
        for c in 0..3 {
            for k in 0..24 {
                assert_eq!(v[c * 24 + k], (grey[k] as f32 / 255.0 - mean[c] as f32) / std[c] as f32);
            }
        }
    }

    /// Every crop-and-flip of a one-channel `h x w` image padded with `p` pixels of `pad`.
    fn crops(image: &[f32], (h, w): (usize, usize), p: usize, pad: f32) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        for top in 0..=2 * p {
            for left in 0..=2 * p {
                for flip in [false, true] {
                    let mut crop = Vec::new();
                    for y in 0..h {
                        for x in 0..w {
                            let (py, px) = (y + top, (if flip { w - 1 - x } else { x }) + left);
                            let inside = py >= p && px >= p && py - p < h && px - p < w;
                            crop.push(if inside { image[(py - p) * w + px - p] } else { pad });
                        }
                    }
                    out.push(crop);
                }
            }
        }
        out
    }

    #[test]
    fn training_batches_are_seeded_crops_and_flips() {
        let dir = TempDir::new();
        for i in 0..4 {
            dir.write(&format!("c{}/{i}.png", i % 2), &grey_png(10 + i * 3, 9));
        }
        let normalise = ImageSpec { mean: vec![0.5], std: vec![0.5], ..spec() };
        let spec = ImageSpec { crop_padding: 1, flip: true, seed: 7, ..normalise.clone() };
        let folder = ImageFolder::open(dir.path(), spec.clone()).unwrap();
        let all = [0u32, 1, 2, 3];
        let images: Vec<Vec<f32>> = (0..4).map(|i| values(&folder.image(i).unwrap())).collect();

        // `batch` never augments.
        let (plain, targets) = folder.batch(&all).unwrap();
        for (i, image) in images.iter().enumerate() {
            assert_eq!(&values(&plain.get(i).unwrap()), image);
        }

        // Reproducible, and the same from another folder opened with the spec.
        let (x, y) = folder.train_batch(&all, 0).unwrap();
        assert_eq!(y.to_vec1::<i64>().unwrap(), targets.to_vec1::<i64>().unwrap());
        assert_eq!(x.dims4().unwrap(), (4, 1, 4, 6));
        let first = values(&x);
        assert_eq!(values(&folder.train_batch(&all, 0).unwrap().0), first);
        let again = ImageFolder::open(dir.path(), spec).unwrap();
        assert_eq!(values(&again.train_batch(&all, 0).unwrap().0), first);

        // An example's draws do not depend on the batch it is in.
        let alone = values(&folder.train_batch(&[3], 2).unwrap().0);
        let (pair, _) = folder.train_batch(&[1, 3], 2).unwrap();
        assert_eq!(values(&pair.get(1).unwrap()), alone);

        // Every example is a crop (black padding: (0 - 0.5) / 0.5 = -1) and maybe a flip of
        // its image; some are changed, and the epochs differ.
        let mut changed = 0;
        let mut epochs = Vec::new();
        for epoch in 0..6 {
            let x = folder.train_batch(&all, epoch).unwrap().0;
            for (i, image) in images.iter().enumerate() {
                let got = values(&x.get(i).unwrap());
                assert!(crops(image, (4, 6), 1, -1.0).contains(&got), "epoch {epoch}, example {i}: {got:?}");
                changed += usize::from(&got != image);
            }
            epochs.push(values(&x));
        }
        assert!(changed > 0);
        assert!(epochs[1..].iter().any(|e| *e != epochs[0]));

        // Without crop or flip, a training batch is the plain batch.
        let folder = ImageFolder::open(dir.path(), normalise).unwrap();
        assert_eq!(values(&folder.train_batch(&all, 3).unwrap().0), values(&plain));
    }
}

//! `--device cpu|cuda[:N]|metal[:N]|auto`.

use candle_core::Device;

use crate::error::{Error, Result};

/// The device a `--device` value names. A device this build lacks is an error that says
/// how to rebuild; one the machine does not have is an error with the driver's reason.
/// `auto` takes CUDA, then Metal, then the CPU (saying on stderr why a GPU back end
/// this build has was passed over).
pub fn parse(spec: &str) -> Result<Device> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => {
            let i: usize = i.parse().map_err(|_| {
                Error::input(format!("--device {spec}: the index after ':' must be a number, e.g. cuda:0"))
            })?;
            (k, i)
        }
        None => (spec, 0),
    };
    match kind {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if !cfg!(feature = "cuda") {
                return Err(Error::input(format!(
                    "--device {spec}: this ember was built without CUDA support; rebuild with `cargo build --release --features cuda` \
                     (it needs the CUDA toolkit: `source .ci/cuda-toolkit.sh` assembles one from PyPI), or use --device cpu"
                )));
            }
            Device::new_cuda(index).map_err(|e| {
                Error::input(format!(
                    "--device {spec}: no usable CUDA device {index} (the CUDA driver says: {}); check `nvidia-smi` \
                     (candle's CUDA 13 kernels need an R580 or newer driver), pick another index, or use --device cpu",
                    driver_message(e)
                ))
            })
        }
        "metal" => {
            if !cfg!(feature = "metal") {
                return Err(Error::input(format!(
                    "--device {spec}: this ember was built without Metal support; rebuild on macOS with \
                     `cargo build --release --features metal`, or use --device cpu"
                )));
            }
            Device::new_metal(index).map_err(|e| {
                Error::input(format!(
                    "--device {spec}: no usable Metal device {index} ({}); pick another index, or use --device cpu",
                    driver_message(e)
                ))
            })
        }
        "auto" => {
            if cfg!(feature = "cuda") {
                match Device::new_cuda(0) {
                    Ok(d) => return Ok(d),
                    Err(e) => eprintln!("note: --device auto: no usable CUDA device ({})", driver_message(e)),
                }
            }
            if cfg!(feature = "metal") {
                match Device::new_metal(0) {
                    Ok(d) => return Ok(d),
                    Err(e) => eprintln!("note: --device auto: no usable Metal device ({})", driver_message(e)),
                }
            }
            Ok(Device::Cpu)
        }
        other => Err(Error::input(format!("--device {other}: unknown device; use cpu, cuda[:N], metal[:N] or auto"))),
    }
}

/// candle's error without its backtrace; cudarc's `DriverError(CODE, "description")`
/// shortened to `CODE: description` (or `CODE` when the driver had no description).
fn driver_message(e: candle_core::Error) -> String {
    let text = Error::from(e).to_string();
    match text.split_once("DriverError(") {
        Some((_, rest)) => {
            let code = rest.split([',', ')']).next().unwrap_or(rest).trim();
            match rest.split('"').nth(1).filter(|d| !d.is_empty() && !d.starts_with('<')) {
                Some(description) => format!("{code}: {description}"),
                None => code.to_string(),
            }
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::driver_message;

    #[test]
    fn driver_errors_are_shortened_to_code_and_description() {
        let e = |s: &str| candle_core::Error::Msg(s.to_string());
        assert_eq!(
            driver_message(e(r#"DriverError(CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected")"#)),
            "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected"
        );
        assert_eq!(
            driver_message(e(r#"DriverError(CUDA_ERROR_STUB_LIBRARY, "<Failure when calling cuGetErrorString()>")"#)),
            "CUDA_ERROR_STUB_LIBRARY"
        );
        assert_eq!(driver_message(e("something else")), "something else");
    }
}

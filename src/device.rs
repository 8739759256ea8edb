//! `--device cpu|cuda[:N]|metal[:N]|auto`.

use candle_core::Device;

/// The device a `--device` value names. A device this build lacks is an error that says
/// how to rebuild; `auto` takes CUDA, then Metal, then the CPU.
pub fn parse(spec: &str) -> anyhow::Result<Device> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => {
            let i: usize = i
                .parse()
                .map_err(|_| anyhow::anyhow!("--device {spec}: the index after ':' must be a number, e.g. cuda:0"))?;
            (k, i)
        }
        None => (spec, 0),
    };
    match kind {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if !cfg!(feature = "cuda") {
                anyhow::bail!(
                    "--device {spec}: this ember was built without CUDA support; rebuild with `cargo build --release --features cuda` \
                     (it needs the CUDA toolkit: `source .ci/cuda-toolkit.sh` assembles one from PyPI), or use --device cpu"
                );
            }
            Device::new_cuda(index).map_err(|e| {
                anyhow::anyhow!(
                    "--device {spec}: no usable CUDA device {index} (the CUDA driver says: {}); check `nvidia-smi` \
                     (candle's CUDA 13 kernels need an R580 or newer driver), pick another index, or use --device cpu",
                    ember_core::Error::from(e)
                )
            })
        }
        "metal" => {
            if !cfg!(feature = "metal") {
                anyhow::bail!(
                    "--device {spec}: this ember was built without Metal support; rebuild on macOS with \
                     `cargo build --release --features metal`, or use --device cpu"
                );
            }
            Device::new_metal(index).map_err(|e| {
                anyhow::anyhow!(
                    "--device {spec}: no usable Metal device {index} ({}); pick another index, or use --device cpu",
                    ember_core::Error::from(e)
                )
            })
        }
        "auto" => Ok(if cfg!(feature = "cuda") {
            Device::new_cuda(0)
                .or_else(|_| if cfg!(feature = "metal") { Device::new_metal(0) } else { Ok(Device::Cpu) })
                .unwrap_or(Device::Cpu)
        } else if cfg!(feature = "metal") {
            Device::new_metal(0).unwrap_or(Device::Cpu)
        } else {
            Device::Cpu
        }),
        other => {
            anyhow::bail!("--device {other}: unknown device; use cpu, cuda[:N], metal[:N] or auto")
        }
    }
}

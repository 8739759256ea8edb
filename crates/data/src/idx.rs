//! The IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed): a magic number
//! giving the element type and rank, the dimensions, then the data.

use std::io::Read;
use std::path::Path;

use candle_core::{Device, Tensor};
use ember_core::{Error, Result};

/// Reads an IDX file of unsigned bytes (images: `[N, rows, cols]`; labels: `[N]`) as a u8
/// tensor. `.gz` files are decompressed. A bad magic number, an unsupported element
/// type or a truncated file is an error naming the file.
pub fn read_u8(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let raw = ember_core::memory::read_file(path, "an IDX file")?;
    read_u8_bytes(&raw, &path.display().to_string())
}

/// [`read_u8`] on bytes in memory (raw or gzip); `origin` names them in errors. A gzip
/// stream is decompressed only as far as its header promises (plus one byte, to notice
/// extra data), so a small file cannot expand into memory beyond what it declares. A
/// gzip file of several members (`cat a.gz b.gz`, bgzip, pigz) reads as their
/// concatenation, as `gunzip` reads it.
pub fn read_u8_bytes(raw: &[u8], origin: &str) -> Result<Tensor> {
    let fail = |msg: String| Error::corrupt(origin, msg);
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut gz = flate2::read::MultiGzDecoder::new(raw);
        let mut out = Vec::new();
        let mut take = |n: u64, out: &mut Vec<u8>| {
            (&mut gz)
                .take(n)
                .read_to_end(out)
                .map_err(|e| fail(format!("cannot decompress (corrupt or truncated gzip): {e}")))
        };
        // The magic number, then the dimensions it announces, then the data they promise.
        take(4, &mut out)?;
        if out.len() == 4 {
            take(4 * u64::from(out[3].min(4)), &mut out)?;
            if let Ok((_, _, count)) = header(&out) {
                take(count as u64 + 1, &mut out)?;
            }
        }
        out
    } else {
        raw.to_vec()
    };
    parse_u8(&bytes).map_err(fail)
}

/// The header's length, dimensions and element count; an error for a header that is not
/// IDX bytes, or is cut short, or promises more elements than the machine can address.
fn header(bytes: &[u8]) -> std::result::Result<(usize, Vec<usize>, usize), String> {
    if bytes.len() < 4 {
        return Err(format!("not an IDX file: {} bytes, shorter than the 4-byte magic number", bytes.len()));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "not an IDX file: bad magic number {:02x} {:02x} {:02x} {:02x} (expected 00 00 08 0N)",
            bytes[0], bytes[1], bytes[2], bytes[3]
        ));
    }
    if bytes[2] != 0x08 {
        return Err(format!("IDX element type 0x{:02x} is not supported; Ember reads unsigned bytes (0x08)", bytes[2]));
    }
    let rank = bytes[3] as usize;
    if rank == 0 || rank > 4 {
        return Err(format!("IDX rank {rank} is not supported (1 to 4)"));
    }
    let len = 4 + 4 * rank;
    if bytes.len() < len {
        return Err(format!("truncated: the header needs {len} bytes, the file has {}", bytes.len()));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    // Every stride (a product of trailing dimensions) must fit in usize too, even when
    // another dimension is 0: so multiply the non-zero ones.
    dims.iter().filter(|&&d| d > 0).try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| {
        format!(
            "the header's dimensions {dims:?} multiply to more elements than this machine can address (corrupt header)"
        )
    })?;
    let count = dims.iter().product();
    Ok((len, dims, count))
}

fn parse_u8(bytes: &[u8]) -> std::result::Result<Tensor, String> {
    let (len, dims, count) = header(bytes)?;
    let data = &bytes[len..];
    if data.len() < count {
        return Err(format!("{} data bytes where the header {dims:?} promises {count} (truncated file)", data.len()));
    }
    if data.len() > count {
        return Err(format!(
            "more data than the header {dims:?} promises ({count} bytes): not an IDX file of that shape"
        ));
    }
    Tensor::from_slice(data, dims, &Device::Cpu).map_err(|e| e.to_string())
}

/// Reads an images file and a labels file, checking that their counts match.
pub fn read_pair(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<(Tensor, Tensor)> {
    let (ip, lp) = (images.as_ref(), labels.as_ref());
    let x = read_u8(ip)?;
    let y = read_u8(lp)?;
    if y.rank() != 1 {
        return Err(Error::corrupt(lp, format!("labels must be one-dimensional, got shape {:?}", y.dims())));
    }
    if x.dim(0)? != y.dim(0)? {
        return Err(Error::input(format!(
            "{} has {} images but {} has {} labels; the files must come from the same split",
            ip.display(),
            x.dim(0)?,
            lp.display(),
            y.dim(0)?
        )));
    }
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    use super::{parse_u8, read_u8_bytes};
    use std::io::Write;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn parses_and_rejects() {
        let t = parse_u8(&idx(&[2, 2], &[1, 2, 3, 4])).unwrap();
        assert_eq!(t.dims(), [2, 2]);
        assert!(parse_u8(&idx(&[2, 2], &[1, 2, 3])).unwrap_err().contains("truncated"));
        for dims in [[u32::MAX; 4], [0, u32::MAX, u32::MAX, u32::MAX]] {
            let huge = parse_u8(&idx(&dims, &[])).unwrap_err();
            assert!(huge.contains("multiply to more elements than this machine can address"), "{huge}");
        }
        assert!(parse_u8(&[1, 2, 3, 4, 5]).unwrap_err().contains("bad magic number"));
        assert!(parse_u8(&idx(&[2], &[1, 2, 3]))
            .unwrap_err()
            .contains("more data than the header [2] promises (2 bytes)"));
        let mut f = idx(&[1], &[0]);
        f[2] = 0x0d;
        assert!(parse_u8(&f).unwrap_err().contains("element type 0x0d"));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_is_decompressed_only_as_far_as_the_header_promises() {
        let t = read_u8_bytes(&gzip(&idx(&[2, 3], &[1, 2, 3, 4, 5, 6])), "ok.gz").unwrap();
        assert_eq!(t.flatten_all().unwrap().to_vec1::<u8>().unwrap(), [1, 2, 3, 4, 5, 6]);
        // 64 MiB of zeros behind a header that promises 4 bytes, with the second half of
        // the compressed stream cut off: a reader that inflated everything would fail on
        // the cut; this one stops after 5 data bytes and names the real problem.
        let bomb = gzip(&idx(&[4], &vec![0u8; 64 << 20]));
        assert!(bomb.len() < 1 << 20);
        let cut = &bomb[..bomb.len() / 2];
        let e = read_u8_bytes(cut, "bomb.gz").unwrap_err().to_string();
        assert!(e.contains("bomb.gz: more data than the header [4] promises (4 bytes)"), "{e}");
        let e = read_u8_bytes(&gzip(&idx(&[4], &[1, 2])), "short.gz").unwrap_err().to_string();
        assert!(e.contains("short.gz: 2 data bytes where the header [4] promises 4 (truncated file)"), "{e}");
        let e = read_u8_bytes(&gzip(&[0, 0, 8, 9]), "rank.gz").unwrap_err().to_string();
        assert!(e.contains("IDX rank 9 is not supported"), "{e}");
    }

    #[test]
    fn a_gzip_file_of_several_members_reads_as_their_concatenation_within_the_bound() {
        // Split mid-header and mid-data: each member alone is a truncated IDX file.
        let raw = idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let members = [gzip(&raw[..6]), gzip(&raw[6..14]), gzip(&raw[14..])].concat();
        let t = read_u8_bytes(&members, "members.gz").unwrap();
        assert_eq!(t.to_vec2::<u8>().unwrap(), [[1, 2, 3], [4, 5, 6]]);
        // A bomb in a later member is bounded as in the first: 64 MiB of zeros behind a
        // header that promises 4 bytes, cut short, is read only to the fifth data byte.
        let bomb = [gzip(&idx(&[4], &[])), gzip(&vec![0u8; 64 << 20])].concat();
        let e = read_u8_bytes(&bomb[..bomb.len() / 2], "bomb.gz").unwrap_err().to_string();
        assert!(e.contains("bomb.gz: more data than the header [4] promises (4 bytes)"), "{e}");
    }
}

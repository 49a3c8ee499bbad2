//! `/metrics` gzip-compressed once per publication, not once per scrape.
//!
//! 200 scrapers asking for gzip each compressed the same 1.6 MB again: hundreds of blocking threads,
//! +100 MiB, probes at 820 ms. Now the published part is deflated once per publication and format (the
//! first gzip scrape does it, one compression at a time over all publications; scrapes meanwhile wait
//! for it without a thread), and each scrape deflates only the small live part (`process_*`, the state
//! file's health) after it. The two deflate streams make one gzip member: the published part ends with
//! a sync flush (byte-aligned, not final), the live part ends the stream, and the trailer's CRC-32 and
//! length cover both, so any gzip reader (curl's included, which reads one member only) reads it whole.

use std::sync::Arc;

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The gzip header: deflate, no name or time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// The published part of one format, compressed: the gzip header and its deflate stream up to a sync
/// flush, and the CRC-32 and length of what it holds.
#[derive(Clone)]
pub(super) struct GzipPrefix {
    bytes: Bytes,
    /// CRC-32 of the published part, continued over the live part by [`crc32_continue`].
    crc: u32,
    /// Its length, modulo 2^32 as gzip's trailer has it.
    amount: u32,
}

/// The compressed published parts of one publication, made by the first gzip scrape of each format.
#[derive(Default)]
pub(super) struct GzipCache([tokio::sync::OnceCell<Option<GzipPrefix>>; 2]);

impl GzipCache {
    /// The compressed `published` part of format `index`, compressed now if no scrape has yet, under
    /// `compressions` (one at a time); `None` if that failed (the scrape is then answered uncompressed).
    pub(super) async fn prefix(
        &self,
        index: usize,
        published: Bytes,
        compressions: &Arc<tokio::sync::Semaphore>,
    ) -> Option<GzipPrefix> {
        let cell = self.0.get(index)?;
        let made = cell.get_or_init(|| async {
            let _one = compressions.acquire().await.ok()?;
            // Megabytes of deflate: not for the async workers.
            tokio::task::spawn_blocking(move || compress_prefix(&published)).await.ok().flatten()
        });
        made.await.clone()
    }
}

fn compress_prefix(published: &[u8]) -> Option<GzipPrefix> {
    let mut bytes = HEADER.to_vec();
    deflate(published, FlushCompress::Sync, &mut bytes)?;
    let mut crc = Crc::new();
    crc.update(published);
    Some(GzipPrefix { bytes: bytes.into(), crc: crc.sum(), amount: crc.amount() })
}

/// The whole gzip body: `prefix`, then `live` deflated to the end of the stream and the trailer.
pub(super) fn finish(prefix: GzipPrefix, live: &[u8]) -> Option<(Bytes, Bytes)> {
    let mut tail = Vec::with_capacity(live.len() / 3 + 64);
    deflate(live, FlushCompress::Finish, &mut tail)?;
    let crc = crc32_continue(prefix.crc, live);
    let amount = prefix.amount.wrapping_add(live.len() as u32);
    tail.extend_from_slice(&crc.to_le_bytes());
    tail.extend_from_slice(&amount.to_le_bytes());
    Some((prefix.bytes, tail.into()))
}

/// The CRC-32 (gzip's, reflected 0xEDB88320) of what `crc` covered followed by `more`: the live part is a
/// few KB, so bit by bit is fast enough, and the published part's CRC is not computed again.
fn crc32_continue(crc: u32, more: &[u8]) -> u32 {
    let mut state = !crc;
    for &byte in more {
        state ^= u32::from(byte);
        for _ in 0..8 {
            state = (state >> 1) ^ (0xEDB8_8320 & (state & 1).wrapping_neg());
        }
    }
    !state
}

/// Raw deflate of `input` appended to `out`, ended by `flush` (`Sync`: byte-aligned and open;
/// `Finish`: the final block).
fn deflate(input: &[u8], flush: FlushCompress, out: &mut Vec<u8>) -> Option<()> {
    // Fast, as node_exporter's: compression is still paid once per publication.
    let mut compress = Compress::new(Compression::fast(), false);
    loop {
        let consumed = usize::try_from(compress.total_in()).ok()?;
        out.reserve((input.len().saturating_sub(consumed) / 2).max(4096));
        let status = compress.compress_vec(input.get(consumed..)?, out, flush).ok()?;
        let all_in = usize::try_from(compress.total_in()).ok()? == input.len();
        match (status, flush) {
            (Status::StreamEnd, _) => return Some(()),
            // A sync flush is complete once all input is in and it left room in the output.
            (_, FlushCompress::Sync) if all_in && out.len() < out.capacity() => return Some(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// 50 scrapes at once share one compression of the published part (the same buffer); a publication
    /// makes a new one. Each answer decodes to the exposition.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scrapes_share_one_compression_per_publication() {
        use crate::metrics::{Exposition, Metrics};
        let metrics = Arc::new(Metrics::new());
        let scrapes: Vec<_> = (0..50)
            .map(|_| {
                let metrics = metrics.clone();
                tokio::spawn(async move { metrics.encode_gzip(Exposition::Prometheus).await.unwrap() })
            })
            .collect();
        let mut answers = Vec::new();
        for scrape in scrapes {
            answers.push(scrape.await.unwrap());
        }
        let shared = answers.iter().map(|(first, _)| first.as_ptr()).collect::<std::collections::HashSet<_>>();
        assert_eq!(shared.len(), 1, "one compression for 50 scrapes");
        let (first, second) = &answers[0];
        let mut text = String::new();
        flate2::read::GzDecoder::new(&[&first[..], &second[..]].concat()[..]).read_to_string(&mut text).unwrap();
        assert!(text.contains("emnify_events_total") && text.contains("process_"), "{text}");
        metrics.publish();
        let (after, _) = metrics.encode_gzip(Exposition::Prometheus).await.unwrap();
        assert_ne!(after.as_ptr(), first.as_ptr(), "a new publication is compressed anew");
    }

    #[test]
    fn crc_continues_as_over_the_whole() {
        let (a, b) = (b"hello, ".as_slice(), b"world".as_slice());
        let mut whole = Crc::new();
        whole.update(&[a, b].concat());
        let mut first = Crc::new();
        first.update(a);
        assert_eq!(crc32_continue(first.sum(), b), whole.sum());
        assert_eq!(crc32_continue(0, b"123456789"), 0xCBF4_3926);
    }

    /// The two parts make one gzip member that decodes (CRC and length checked) to both texts, read as a
    /// single member, as curl reads it.
    #[test]
    fn prefix_and_tail_are_one_gzip_member() {
        let published: Vec<u8> =
            (0..200_000).flat_map(|i: u32| format!("metric{{n=\"{i}\"}} {i}\n").into_bytes()).collect();
        let live = b"process_open_fds 12\n# EOF\n";
        for part in [&published[..], b""] {
            let prefix = compress_prefix(part).unwrap();
            let (first, second) = finish(prefix, live).unwrap();
            let whole = [&first[..], &second[..]].concat();
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(&whole[..]).read_to_end(&mut text).unwrap();
            assert_eq!(text, [part, &live[..]].concat());
            assert!(part.is_empty() || whole.len() < part.len() / 4, "{} of {}", whole.len(), part.len());
        }
    }
}

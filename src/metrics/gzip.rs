//! `/metrics` gzip-compressed once per publication, not once per scrape.
//!
//! 200 scrapers asking for gzip each compressed the same 1.6 MB again: hundreds of blocking threads,
//! +100 MiB, probes at 820 ms. Now the published part is deflated once per publication and format (the
//! first gzip scrape does it, one compression at a time over all publications; scrapes meanwhile wait
//! for it without a thread), and each scrape appends only the small live part (`process_*`, the state
//! file's health) after it, stored uncompressed. Together they make one gzip member: the published part
//! ends with a sync flush (byte-aligned, not final), the live part's stored blocks end the stream, and
//! the trailer's CRC-32 and length cover both, so any gzip reader (curl's included, which reads one
//! member only) reads it whole.

use std::sync::Arc;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

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
    deflate(published, &mut bytes)?;
    // gzip's trailer keeps the length modulo 2^32: the cast truncates on purpose.
    Some(GzipPrefix { bytes: bytes.into(), crc: crc32fast::hash(published), amount: published.len() as u32 })
}

/// The whole gzip body: `prefix`, then `live` as the stream's last, stored (uncompressed) blocks and
/// the trailer. The live part is a few KB: compressing it saved a few KB a scrape but cost more CPU than
/// the rest of the scrape (a compressor zeroes some 300 KB of tables, even when reset).
pub(super) fn finish(prefix: GzipPrefix, live: &[u8]) -> Option<(Bytes, Bytes)> {
    let mut tail = Vec::with_capacity(live.len() + live.len() / 65_535 * 5 + 13);
    let mut blocks = live.chunks(usize::from(u16::MAX)).peekable();
    if blocks.peek().is_none() {
        tail.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        // BFINAL on the last, BTYPE 00 (stored); the prefix ended byte-aligned, so the header is a byte.
        tail.push(u8::from(blocks.peek().is_none()));
        let len = u16::try_from(block.len()).ok()?;
        tail.extend_from_slice(&len.to_le_bytes());
        tail.extend_from_slice(&(!len).to_le_bytes());
        tail.extend_from_slice(block);
    }
    let crc = crc32_continue(prefix.crc, live);
    let amount = prefix.amount.wrapping_add(live.len() as u32);
    tail.extend_from_slice(&crc.to_le_bytes());
    tail.extend_from_slice(&amount.to_le_bytes());
    Some((prefix.bytes, tail.into()))
}

/// The CRC-32 (gzip's) of what `crc` covered followed by `more`: the published part's is not computed again.
fn crc32_continue(crc: u32, more: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(crc);
    hasher.update(more);
    hasher.finalize()
}

/// Raw deflate of `input` appended to `out`, ended by a sync flush: byte-aligned, the stream left open.
fn deflate(input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    // Fast, as node_exporter's: compression is still paid once per publication.
    let mut compress = Compress::new(Compression::fast(), false);
    loop {
        let consumed = usize::try_from(compress.total_in()).ok()?;
        out.reserve((input.len().saturating_sub(consumed) / 2).max(4096));
        compress.compress_vec(input.get(consumed..)?, out, FlushCompress::Sync).ok()?;
        // Complete once all input is in and the flush left room in the output.
        if usize::try_from(compress.total_in()).ok()? == input.len() && out.len() < out.capacity() {
            return Some(());
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
        let mut whole = flate2::Crc::new();
        whole.update(&[a, b].concat());
        let mut first = flate2::Crc::new();
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
        let long_live: Vec<u8> = (0..7_000).flat_map(|i: u32| format!("process_x {i}\n").into_bytes()).collect();
        let cases = [
            (&published[..], &b"process_open_fds 12\n# EOF\n"[..]),
            (b"", b"x 1\n"),
            (b"a 1\n", b""),
            (b"", &long_live[..]),
        ];
        for (part, live) in cases {
            let prefix = compress_prefix(part).unwrap();
            let (first, second) = finish(prefix, live).unwrap();
            let whole = [&first[..], &second[..]].concat();
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(&whole[..]).read_to_end(&mut text).unwrap();
            assert_eq!(text, [part, live].concat());
            assert!(part.len() < 1000 || whole.len() < part.len() / 4, "{} of {}", whole.len(), part.len());
        }
    }
}

//! Streams a query result through a result writer into chunks of bytes, with memory bounded
//! by a few batches whatever the result size.
//!
//! Three stages joined by bounded channels: a task pulls batches from the engine; a blocking
//! thread encodes them ([`crate::formats`] writers are synchronous and CPU-bound, so they stay
//! off the async workers) into 256 KiB chunks; the consumer (an HTTP body or an object-store
//! upload) takes the chunks. Backpressure runs end to end, and dropping the consumer stops
//! everything: the encoder's send fails, it returns, the producer sees its channel closed
//! (also while it waits for a slow batch) and drops the query, which cancels it.

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::Stream;
use tessera_engine::QueryResult;
use tokio::sync::mpsc;

use crate::formats::{self, Format, WriterOptions};

/// Bytes per chunk handed to the consumer.
const CHUNK: usize = 256 << 10;

/// How an encoded result ended.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// More rows existed than MAXREC allowed.
    pub overflow: bool,
    /// The error that ended the result early (the query failed after its first batch, or
    /// the output could not be written).
    pub error: Option<String>,
}

enum Msg {
    Batch(RecordBatch),
    End(bool),
    Error(String),
}

/// A [`Write`] that hands full chunks to a channel (from a blocking thread).
struct ChanWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    sent: u64,
}

impl ChanWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.sent += chunk.len() as u64;
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The encoded result: a stream of chunks, and how it ended (resolved once the stream has
/// been consumed to its end). An error in the stream means the output is cut short (for
/// formats with no way to say so in-band); VOTable results instead end with
/// `QUERY_STATUS=ERROR` and a clean end of stream.
pub struct Encoded {
    /// The bytes.
    pub body: std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>,
    /// The summary, once the body is finished.
    pub summary: tokio::task::JoinHandle<Summary>,
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded").finish_non_exhaustive()
    }
}

/// Starts encoding `result`, whose first batch was already taken as `first`; `None` means
/// the result had no batch at all (its stream has ended).
pub fn encode(
    first: Option<RecordBatch>,
    result: QueryResult,
    format: Format,
    options: WriterOptions,
) -> Encoded {
    let schema = result.schema();
    encode_with_schema(first, result, schema, format, options)
}

/// [`encode`] with the result described by `schema` instead of the query's own: the same
/// columns with other field metadata (SCS's UCD1s).
pub fn encode_with_schema(
    first: Option<RecordBatch>,
    mut result: QueryResult,
    schema: arrow::datatypes::SchemaRef,
    format: Format,
    options: WriterOptions,
) -> Encoded {
    let (btx, mut brx) = mpsc::channel::<Msg>(2);
    let (otx, orx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::spawn(async move {
        match first {
            Some(b) => {
                if btx.send(Msg::Batch(b)).await.is_err() {
                    return;
                }
            }
            // The stream has ended already (and must not be polled again).
            None => {
                let _ = btx.send(Msg::End(result.overflowed())).await;
                return;
            }
        }
        loop {
            let next = tokio::select! {
                n = result.next() => n,
                _ = btx.closed() => return,
            };
            let msg = match next {
                Some(Ok(b)) => Msg::Batch(b),
                Some(Err(e)) => Msg::Error(e.to_string()),
                None => Msg::End(result.overflowed()),
            };
            let last = !matches!(msg, Msg::Batch(_));
            if btx.send(msg).await.is_err() || last {
                return;
            }
        }
    });
    let summary = tokio::task::spawn_blocking(move || {
        let out = ChanWriter {
            buf: Vec::with_capacity(CHUNK),
            tx: otx.clone(),
            sent: 0,
        };
        let mut s = Summary::default();
        let mut w = match formats::writer(format, &schema, out, &options) {
            Ok(w) => w,
            Err(e) => {
                let msg = e.to_string();
                let _ = otx.blocking_send(Err(std::io::Error::other(msg.clone())));
                s.error = Some(msg);
                return s;
            }
        };
        loop {
            match brx.blocking_recv() {
                Some(Msg::Batch(b)) => {
                    s.rows += b.num_rows() as u64;
                    let b = if Arc::ptr_eq(&b.schema(), &schema) {
                        Ok(b)
                    } else {
                        RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                            .map_err(crate::formats::FormatError::from)
                    };
                    if let Err(e) = b.and_then(|b| w.write_batch(&b)) {
                        let msg = e.to_string();
                        let _ = otx.blocking_send(Err(std::io::Error::other(msg.clone())));
                        s.error = Some(msg);
                        return s;
                    }
                }
                Some(Msg::End(overflow)) => {
                    s.overflow = overflow;
                    match w.finish(overflow) {
                        Ok(mut out) => {
                            if let Err(e) = out.flush() {
                                s.error = Some(e.to_string());
                            }
                            s.bytes = out.sent;
                        }
                        Err(e) => {
                            let msg = e.to_string();
                            let _ = otx.blocking_send(Err(std::io::Error::other(msg.clone())));
                            s.error = Some(msg);
                        }
                    }
                    return s;
                }
                Some(Msg::Error(msg)) => {
                    s.error = Some(msg.clone());
                    let in_band =
                        matches!(format, Format::VoTableBinary2 | Format::VoTableTabledata);
                    if let Ok(mut out) = w.finish_error(&msg) {
                        let _ = out.flush();
                        s.bytes = out.sent;
                    }
                    if !in_band {
                        let _ = otx.blocking_send(Err(std::io::Error::other(msg)));
                    }
                    return s;
                }
                None => {
                    s.error = Some("the query was cancelled".into());
                    return s;
                }
            }
        }
    });
    let body = futures::stream::unfold(
        orx,
        |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
    );
    Encoded {
        body: Box::pin(body),
        summary,
    }
}

/// A body written by a blocking function (FITS cutouts): `write` runs on a blocking thread
/// and its output reaches the client in 256 KiB chunks with backpressure; when the client
/// goes away, the writer's next chunk fails and `write` returns.
pub fn blocking_body<F>(
    write: F,
) -> std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>
where
    F: FnOnce(&mut dyn Write) -> Result<(), String> + Send + 'static,
{
    let (otx, orx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChanWriter {
            buf: Vec::with_capacity(CHUNK),
            tx: otx.clone(),
            sent: 0,
        };
        let r = write(&mut out).and_then(|()| out.flush().map_err(|e| e.to_string()));
        if let Err(e) = r {
            let _ = otx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    Box::pin(futures::stream::unfold(orx, |mut rx| async move {
        rx.recv().await.map(|x| (x, rx))
    }))
}

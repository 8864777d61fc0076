//! The import body, streamed from HTTP to the CSV reader without ever being held whole.
//!
//! The async side reads the request — a raw `text/csv` body, or the first file part of a
//! multipart body — chunk by chunk, counts the bytes against [`MAX_IMPORT_BODY`], and passes the
//! chunks through a small bounded channel to a blocking thread, where a [`BodyReader`] (tokio-util's
//! `StreamReader` over the channel, behind a `SyncIoBridge`) turns them back into a
//! `std::io::Read` for the `csv` crate. Memory stays at a few chunks whatever the size of the
//! upload; a slow store slows the upload (the channel is full), never the reverse.

use std::io;

use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::media_type;
use crate::state::AppState;

/// Largest import body: 1,000,000 rows of long ids and ISO dates fit with room to spare.
pub(super) const MAX_IMPORT_BODY: usize = 256 * 1024 * 1024;

/// Chunks in flight between the HTTP side and the CSV reader.
const CHANNEL: usize = 8;

/// What the HTTP side hands the reader.
#[derive(Debug)]
pub(super) enum Chunk {
    Data(Bytes),
    /// The body ended normally.
    End,
    /// The body could not be read to its end.
    Fail(BodyError),
}

/// Why the body stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum BodyError {
    #[error("the upload is larger than {MAX_IMPORT_BODY} bytes")]
    TooLarge,
    #[error("cannot read the upload: {0}")]
    Read(String),
    #[error("the upload was interrupted")]
    Interrupted,
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// How the CSV comes.
#[derive(Debug)]
pub(super) enum Source {
    Raw(Body),
    Multipart(Multipart),
}

/// Why the request as a whole cannot be an import.
#[derive(Debug, thiserror::Error)]
pub(super) enum SourceError {
    #[error("Content-Type {0:?} is not supported: send text/csv, or multipart/form-data with the CSV as a file part")]
    ContentType(String),
    #[error("the upload is larger than {MAX_IMPORT_BODY} bytes")]
    TooLarge,
    #[error("invalid multipart body: {0}")]
    Multipart(String, StatusCode),
    #[error("no file part in the multipart body")]
    NoFile,
}

impl SourceError {
    pub fn status(&self) -> StatusCode {
        match self {
            SourceError::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            SourceError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            SourceError::Multipart(_, status) => *status,
            SourceError::NoFile => StatusCode::BAD_REQUEST,
        }
    }
}

fn multipart_error(e: MultipartError) -> SourceError {
    let status = e.status();
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    SourceError::Multipart(e.body_text(), status)
}

impl Source {
    /// Picks the body by `Content-Type`: `multipart/form-data`, or a raw CSV (`text/csv`,
    /// `application/csv`, `text/plain`, `application/octet-stream`, or none). A declared length
    /// over the limit is refused before anything is read.
    pub async fn of(state: &AppState, parts: Parts, body: Body) -> Result<Source, SourceError> {
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_IMPORT_BODY as u64) {
            return Err(SourceError::TooLarge);
        }
        match media_type(&parts).as_deref() {
            Some("multipart/form-data") => {
                let request = Request::from_parts(parts, body);
                let multipart = Multipart::from_request(request, state)
                    .await
                    .map_err(|e| SourceError::Multipart(e.body_text(), e.status()))?;
                Ok(Source::Multipart(multipart))
            }
            None
            | Some("text/csv" | "application/csv" | "text/plain" | "application/octet-stream") => {
                Ok(Source::Raw(body))
            }
            Some(other) => Err(SourceError::ContentType(other.to_string())),
        }
    }

    /// Sends the CSV's bytes to `tx`, ending with [`Chunk::End`] or [`Chunk::Fail`]. Returns
    /// early when the reader has stopped (its end of the channel is closed). A multipart body
    /// without a file part is an error before anything is sent.
    pub async fn pump(self, tx: mpsc::Sender<Chunk>) -> Result<(), SourceError> {
        let mut sent = 0usize;
        match self {
            Source::Raw(body) => {
                let mut stream = body.into_data_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()));
                    if !forward(&tx, chunk, &mut sent).await {
                        return Ok(());
                    }
                }
            }
            Source::Multipart(mut multipart) => {
                let mut field = loop {
                    match multipart.next_field().await.map_err(multipart_error)? {
                        // A file part has a filename or a content type; plain fields are skipped.
                        Some(f) if f.file_name().is_some() || f.content_type().is_some() => {
                            break f
                        }
                        Some(_) => continue,
                        None => return Err(SourceError::NoFile),
                    }
                };
                loop {
                    let chunk = match field.chunk().await {
                        Ok(Some(c)) => Ok(c),
                        Ok(None) => break,
                        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                            Err(BodyError::TooLarge)
                        }
                        Err(e) => Err(BodyError::Read(e.body_text())),
                    };
                    if !forward(&tx, chunk, &mut sent).await {
                        return Ok(());
                    }
                }
            }
        }
        let _ = tx.send(Chunk::End).await;
        Ok(())
    }
}

/// Forwards one chunk (or its failure); whether to go on.
async fn forward(
    tx: &mpsc::Sender<Chunk>,
    chunk: Result<Bytes, BodyError>,
    sent: &mut usize,
) -> bool {
    let message = match chunk {
        Ok(data) if *sent + data.len() > MAX_IMPORT_BODY => Chunk::Fail(BodyError::TooLarge),
        Ok(data) => {
            *sent += data.len();
            Chunk::Data(data)
        }
        Err(e) => Chunk::Fail(e),
    };
    let go_on = matches!(message, Chunk::Data(_));
    tx.send(message).await.is_ok() && go_on
}

/// The channel's chunks as a blocking `Read`, for the CSV reader on a blocking thread (each read
/// blocks on the runtime, so never read it from async code). A closed channel without
/// [`Chunk::End`] means the request was dropped: that is an error, so a half-received upload is
/// never taken as whole; after an error every read fails with it again.
pub(super) type BodyReader =
    SyncIoBridge<StreamReader<BoxStream<'static, io::Result<Bytes>>, Bytes>>;

/// The channel both sides use. Called on the runtime, whose handle the reader keeps.
pub(super) fn channel() -> (mpsc::Sender<Chunk>, BodyReader) {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let chunks = stream::unfold(Ok(rx), |state| async move {
        let failed = match state {
            Err(failed) => failed,
            Ok(mut rx) => match rx.recv().await {
                Some(Chunk::Data(data)) => return Some((Ok(data), Ok(rx))),
                Some(Chunk::End) => return None,
                Some(Chunk::Fail(e)) => e,
                None => BodyError::Interrupted,
            },
        };
        Some((Err(io::Error::other(failed.clone())), Err(failed)))
    });
    (tx, SyncIoBridge::new(StreamReader::new(chunks.boxed())))
}

/// The [`BodyError`] inside an I/O error from [`ChunkReader`], if that is what it is.
pub(super) fn body_error(e: &io::Error) -> Option<BodyError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<BodyError>())
        .cloned()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Reads `reader` to its end on a blocking thread, as the import does.
    async fn read_all(mut reader: BodyReader) -> (io::Result<Vec<u8>>, BodyReader) {
        tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            let result = reader.read_to_end(&mut all).map(|_| all);
            (result, reader)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn reader_joins_chunks_and_reports_how_the_body_ended() {
        let (tx, reader) = channel();
        for part in ["ab", "", "cde"] {
            tx.send(Chunk::Data(Bytes::from(part))).await.unwrap();
        }
        tx.send(Chunk::End).await.unwrap();
        let (all, mut reader) = read_all(reader).await;
        assert_eq!(all.unwrap(), b"abcde");
        let more = tokio::task::spawn_blocking(move || reader.read(&mut [0; 8]));
        assert_eq!(more.await.unwrap().unwrap(), 0, "still at the end");

        let (tx, reader) = channel();
        tx.send(Chunk::Data(Bytes::from("x"))).await.unwrap();
        tx.send(Chunk::Fail(BodyError::TooLarge)).await.unwrap();
        drop(tx);
        let (e, mut reader) = read_all(reader).await;
        assert_eq!(body_error(&e.unwrap_err()), Some(BodyError::TooLarge));
        let again = tokio::task::spawn_blocking(move || reader.read(&mut [0; 8]));
        let e = again.await.unwrap().unwrap_err();
        assert_eq!(body_error(&e), Some(BodyError::TooLarge), "not an end");

        let (tx, reader) = channel();
        tx.send(Chunk::Data(Bytes::from("half"))).await.unwrap();
        drop(tx);
        let (e, _) = read_all(reader).await;
        assert_eq!(body_error(&e.unwrap_err()), Some(BodyError::Interrupted));
    }

    #[tokio::test]
    async fn at_most_a_few_chunks_wait_for_the_reader() {
        let (tx, _reader) = channel();
        for _ in 0..CHANNEL {
            tx.try_send(Chunk::Data(Bytes::from("x"))).unwrap();
        }
        assert!(tx.try_send(Chunk::Data(Bytes::from("x"))).is_err());
    }
}

//! What every API reads from a request the same way: the media type of its body and the body
//! itself, bounded. (API keys are checked in [`super::auth`].) Each API maps the errors here
//! into its own error shape.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("request body could not be read: {0}")]
    Broken(String),
}

/// The lowercased media type of `Content-Type`, without its parameters (`text/csv` of
/// `text/csv; charset=utf-8`); `None` without the header.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes (nothing more is read).
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn media_types_lose_parameters_and_case() {
        let mut h = HeaderMap::new();
        assert_eq!(media_type(&h), None);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Text/CSV ; charset=utf-8"),
        );
        assert_eq!(media_type(&h).as_deref(), Some("text/csv"));
    }

    #[tokio::test]
    async fn bodies_are_bounded() {
        assert_eq!(&read_body(Body::from("abc"), 3).await.unwrap()[..], b"abc");
        assert!(matches!(
            read_body(Body::from("abcd"), 3).await,
            Err(BodyError::TooLarge(3))
        ));
    }
}

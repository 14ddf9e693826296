//! Request bodies, read whole before a handler uses them: at most the body
//! limit (413 beyond, refused from `Content-Length` before reading), and no
//! slower than `--body-min-rate` bytes a second once [`BODY_GRACE`] has
//! passed (408). A body trickling in a byte at a time would otherwise hold
//! its place under the cap on requests in flight for the whole request
//! time-out: a thousand such uploads once silenced every route.
//!
//! An extractor rather than a layer: only the routes that take a body pay
//! for it, and a body that has all arrived (the usual case) is taken with
//! no timer and no copy (a layer in front of every route cost about 8% of
//! GET and PUT throughput, docs/BENCHMARKS.md).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use bytes::{Bytes, BytesMut};
use http_body::Body as _;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a request body may take before the minimum rate applies.
pub const BODY_GRACE: Duration = Duration::from_secs(5);

/// A request body read whole, within the limits (see the module docs).
/// Every route that takes a body takes it as this, not as `Bytes`.
#[derive(Debug)]
pub struct Body(pub Bytes);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    fn from_request(
        request: Request,
        state: &AppState,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        let limit = crate::app::body_limit(state.config());
        let min_rate = state.config().body_min_rate;
        async move {
            let declared = request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(too_large());
            }
            read(request.into_body(), limit, min_rate).await.map(Body)
        }
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is larger than the server accepts (see max_value_size)",
    )
}

/// Reads `body` whole: at most `limit` bytes, at `min_rate` bytes a second
/// after the grace (0: no rate).
async fn read(mut body: axum::body::Body, limit: usize, min_rate: u64) -> Result<Bytes, ApiError> {
    let started = Instant::now();
    // The first chunk is kept as it is; a copy is made only if more follow.
    let mut first: Option<Bytes> = None;
    let mut gathered: Option<BytesMut> = None;
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        loop {
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("could not read the request body: {error}"),
                    )));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    let have = first.as_ref().map_or(0, Bytes::len)
                        + gathered.as_ref().map_or(0, BytesMut::len);
                    if have + data.len() > limit {
                        return Poll::Ready(Err(too_large()));
                    }
                    match (&mut first, &mut gathered) {
                        (None, None) => first = Some(data),
                        (Some(_), None) => {
                            let mut all = BytesMut::from(first.take().unwrap_or_default());
                            all.extend_from_slice(&data);
                            gathered = Some(all);
                        }
                        (_, Some(all)) => all.extend_from_slice(&data),
                    }
                }
                Poll::Pending => {
                    if min_rate == 0 {
                        return Poll::Pending;
                    }
                    // Allowed: the grace, plus the time `min_rate` takes for
                    // what has arrived, so the deadline moves on as bytes come.
                    let have = first.as_ref().map_or(0, Bytes::len)
                        + gathered.as_ref().map_or(0, BytesMut::len);
                    let earned = Duration::from_secs_f64(have as f64 / min_rate as f64);
                    let deadline = tokio::time::Instant::from(started + BODY_GRACE + earned);
                    let timer =
                        timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if timer.deadline() != deadline {
                        timer.as_mut().reset(deadline);
                    }
                    return match timer.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Err(ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            format!(
                                "the request body arrived too slowly (under {min_rate} bytes a \
                                 second after {} s); cut off",
                                BODY_GRACE.as_secs()
                            ),
                        ))),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    })
    .await?;
    Ok(match (first, gathered) {
        (_, Some(all)) => all.freeze(),
        (Some(one), None) => one,
        (None, None) => Bytes::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    /// A body of these chunks, each after a pause.
    fn trickle(chunks: Vec<(Duration, &'static [u8])>) -> axum::body::Body {
        let stream = futures_util::stream::unfold(chunks.into_iter(), |mut rest| async move {
            let (pause, chunk) = rest.next()?;
            tokio::time::sleep(pause).await;
            let frame = http_body::Frame::data(Bytes::from_static(chunk));
            Some((Ok::<_, std::io::Error>(frame), rest))
        });
        axum::body::Body::new(StreamBody::new(stream))
    }

    #[tokio::test(start_paused = true)]
    async fn bodies_are_read_whole_within_the_size_and_the_rate() {
        let ms = Duration::from_millis;
        // All at once: the chunk itself, no copy needed.
        let whole = read(trickle(vec![(ms(0), b"hello")]), 100, 1000).await;
        assert_eq!(whole.expect("read"), Bytes::from_static(b"hello"));
        // In pieces within the grace.
        let pieces = vec![(ms(100), &b"he"[..]), (ms(4000), b"ll"), (ms(500), b"o")];
        assert_eq!(
            read(trickle(pieces), 100, 1000).await.expect("read"),
            "hello"
        );
        // Too slow: two bytes, then nothing within 5 s + 2 ms.
        let stalled = vec![(ms(0), &b"he"[..]), (ms(6000), b"llo")];
        let error = read(trickle(stalled), 100, 1000)
            .await
            .expect_err("too slow");
        assert_eq!(error.status, StatusCode::REQUEST_TIMEOUT);
        // The same without a rate.
        let stalled = vec![(ms(0), &b"he"[..]), (ms(6000), b"llo")];
        assert_eq!(read(trickle(stalled), 100, 0).await.expect("read"), "hello");
        // Too large, whatever the pace.
        let big = vec![(ms(0), &b"0123456789"[..]), (ms(0), b"0123456789")];
        let error = read(trickle(big), 15, 1000).await.expect_err("too large");
        assert_eq!(error.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}

//! The idle timer of a streamed upstream response (`idle_timeout`, SSE and long polls): when
//! the upstream sends no frame for that long, the body ends with an error, so the client's
//! stream is aborted (HTTP/1: the connection closes; HTTP/2: the stream is reset) instead of
//! hanging. The timer restarts at every frame. It never buffers or inspects the data.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use super::BoxError;

pin_project_lite::pin_project! {
    pub struct IdleTimeout<B> {
        #[pin]
        body: B,
        #[pin]
        timer: Sleep,
        idle: Duration,
    }
}

impl<B> IdleTimeout<B> {
    pub fn new(body: B, idle: Duration) -> IdleTimeout<B> {
        IdleTimeout {
            body,
            timer: tokio::time::sleep(idle),
            idle,
        }
    }
}

/// The error a body ends with when its upstream went quiet.
#[derive(Debug, thiserror::Error)]
#[error("upstream response idle for longer than idle_timeout")]
pub struct IdleElapsed;

impl<B> http_body::Body for IdleTimeout<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.body.poll_frame(cx) {
            Poll::Ready(frame) => {
                let idle = *this.idle;
                this.timer.as_mut().reset(Instant::now() + idle);
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(IdleElapsed.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_quiet_stream_ends_with_an_error_and_frames_restart_the_timer() {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let body = http_body_util::StreamBody::new(ReceiverStream(receiver));
        let mut body = std::pin::pin!(IdleTimeout::new(body, Duration::from_millis(300)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        sender
            .send(Ok::<_, BoxError>(http_body::Frame::data(Bytes::from("a"))))
            .await
            .expect("send");
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().expect("data"), "a");
        // 200 ms after the frame: still open (the timer restarted).
        let early = tokio::time::timeout(Duration::from_millis(200), body.frame()).await;
        assert!(early.is_err(), "no frame and no error yet");
        let late = body.frame().await.expect("an item");
        assert!(late.is_err(), "idle for 300 ms: the body errors");
        drop(sender);
    }

    struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

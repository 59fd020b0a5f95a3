//! A response future that holds a guard (a concurrency permit) until the
//! inner future completes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    pub struct Guarded<F, G> {
        #[pin]
        inner: F,
        guard: G,
    }
}

impl<F, G> Guarded<F, G> {
    pub(crate) fn new(inner: F, guard: G) -> Self {
        Guarded { inner, guard }
    }
}

impl<F: Future, G> Future for Guarded<F, G> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

//! Drive a future to completion on the host, for the tests of the browser's asynchronous path.
//! Reads on burn's CPU backend complete at once, so polling in a loop with a no-op waker is
//! enough; in the browser the JS event loop drives futures.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
}

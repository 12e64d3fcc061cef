//! Giving up on a wait: [`CancelToken`], the one bounded wait
//! ([`bounded`]) and the one campaign-with-timeout
//! ([`Election::campaign_with`](crate::Election::campaign_with)) that every
//! surface uses (the blocking facade, C, Python and Node).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::election::{Election, Leadership};
use crate::error::{Error, ErrorKind, Result};

/// Cancels waiting calls, from any thread. Cloning gives another handle on the
/// same token. Once cancelled, it stays cancelled; make a new one for new calls.
#[derive(Clone, Debug)]
pub struct CancelToken {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken { tx: Arc::new(watch::channel(false).0) }
    }
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels every call waiting on this token; they return `Cancelled` (a
    /// cancelled campaign is withdrawn and leaves no entry).
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once `cancel` was called (at once if it was already).
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Runs `fut` until it finishes, `timeout` passes (a `Timeout` error saying that
/// `what` did not finish in time) or `cancel` fires (`Cancelled`). Either way
/// `fut` is dropped, which for every operation of ballot withdraws what it
/// started. A cancel that is already set wins over a result that is ready.
pub(crate) async fn bounded<T, F>(
    fut: F,
    timeout: Option<Duration>,
    cancel: Option<&CancelToken>,
    what: &str,
) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let cancelled = async {
        match cancel {
            Some(c) => c.cancelled().await,
            None => std::future::pending().await,
        }
    };
    let limited = async {
        match timeout {
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .unwrap_or_else(|_| Err(Error::new(ErrorKind::Timeout, format!("{what} did not finish within {t:?}")))),
            None => fut.await,
        }
    };
    tokio::select! {
        biased;
        _ = cancelled => Err(Error::new(ErrorKind::Cancelled, format!("{what} was cancelled"))),
        r = limited => r,
    }
}

impl Election {
    /// [`campaign`](Self::campaign), given up after `timeout` (`Timeout`) or when
    /// `cancel` fires (`Cancelled`). Either way the candidate is withdrawn and
    /// leaves no entry, as when the campaign's future is dropped. The blocking
    /// facade, C, Python and Node all campaign through this.
    ///
    /// # Errors
    ///
    /// Those of [`campaign`](Self::campaign), and `Timeout` or `Cancelled`.
    ///
    /// # Cancel safety
    ///
    /// As [`campaign`](Self::campaign): dropping the future withdraws the
    /// candidate.
    pub async fn campaign_with(
        &self,
        value: impl AsRef<[u8]>,
        timeout: Option<Duration>,
        cancel: Option<&CancelToken>,
    ) -> Result<Leadership> {
        bounded(self.campaign(value), timeout, cancel, "the campaign").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bounded_wait_ends_by_result_timeout_or_cancel() {
        let ok = bounded(async { Ok(7) }, Some(Duration::from_secs(1)), None, "x").await;
        assert_eq!(ok.unwrap(), 7);
        let never = || async { std::future::pending::<Result<u32>>().await };
        let e = bounded(never(), Some(Duration::from_secs(1)), None, "the wait").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().starts_with("the wait did not finish within 1s"), "{e}");
        let token = CancelToken::new();
        let t2 = token.clone();
        tokio::spawn(async move { t2.cancel() });
        let e = bounded(never(), None, Some(&token), "the wait").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled);
        assert!(token.is_cancelled());
        // Already cancelled: cancelled at once, even with a ready result.
        let e = bounded(async { Ok(1) }, None, Some(&token), "x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled);
    }
}

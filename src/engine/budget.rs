//! The budget ledger: what a run has spent, and what its calls in flight may
//! still spend, against the scenario's caps (`budget:` in YAML).
//!
//! The executor reserves each call's worst case (one request, its
//! [`UsageBound`](crate::model::provider::UsageBound) in tokens, and their price)
//! before sending it, and settles with what the call used. A call that does
//! not fit waits for calls in flight to settle; when nothing is in flight and
//! it still does not fit, the budget is exhausted. So no cap is ever
//! exceeded, as long as servers stay within the bounds (see
//! [`TEMPLATE_ALLOWANCE`](crate::model::provider::TEMPLATE_ALLOWANCE)).

use std::sync::Mutex;

use tokio::sync::Notify;

use crate::scenario::budget::{Budget, Spend};

pub struct Ledger {
    caps: Budget,
    state: Mutex<State>,
    settled: Notify,
}

#[derive(Default)]
struct State {
    spent: Spend,
    reserved: Spend,
    in_flight: usize,
}

/// A call's reserved worst case, released by [`Reservation::settle`]. Dropped
/// unsettled, the whole reservation counts as spent: the call may have been
/// sent.
pub struct Reservation<'a> {
    ledger: &'a Ledger,
    bound: Spend,
    settled: bool,
}

impl Ledger {
    /// `spent`: what the run spent before (when resuming).
    pub fn new(caps: Budget, spent: Spend) -> Self {
        Ledger {
            caps,
            state: Mutex::new(State {
                spent,
                ..State::default()
            }),
            settled: Notify::new(),
        }
    }

    /// Whether a token or cost cap is set, so that calls must reserve their
    /// token bound (a request cap needs none).
    pub fn counts_tokens(&self) -> bool {
        self.caps.max_tokens.is_some() || self.caps.max_cost_usd.is_some()
    }

    pub fn spent(&self) -> Spend {
        self.state.lock().expect("ledger lock").spent
    }

    /// Reserve `bound` for one call, waiting for calls in flight to settle
    /// while it does not fit. `Err` says which cap the call would exceed.
    pub async fn reserve(&self, bound: Spend) -> Result<Reservation<'_>, String> {
        loop {
            // Registered before the check, so a settle in between still wakes us.
            let settled = self.settled.notified();
            {
                let mut st = self.state.lock().expect("ledger lock");
                match self.overrun(&st, bound) {
                    None => {
                        st.reserved = st.reserved.plus(bound);
                        st.in_flight += 1;
                        return Ok(Reservation {
                            ledger: self,
                            bound,
                            settled: false,
                        });
                    }
                    Some(why) if st.in_flight == 0 => return Err(why),
                    Some(_) => {}
                }
            }
            settled.await;
        }
    }

    /// Which cap `bound` would exceed on top of what is spent and reserved.
    fn overrun(&self, st: &State, bound: Spend) -> Option<String> {
        let committed = st.spent.plus(st.reserved);
        let c = &self.caps;
        if let Some(max) = c.max_requests
            && committed.requests + bound.requests > max
        {
            return Some(format!(
                "budget exhausted: max_requests is {max} and {} requests were made",
                st.spent.requests
            ));
        }
        if let Some(max) = c.max_tokens
            && committed.tokens + bound.tokens > max
        {
            return Some(format!(
                "budget exhausted: max_tokens is {max}, {} were spent, and the next request may use up to {}",
                st.spent.tokens, bound.tokens
            ));
        }
        if let Some(max) = c.max_cost_usd
            && committed.cost_usd + bound.cost_usd > max + 1e-12
        {
            return Some(format!(
                "budget exhausted: max_cost_usd is {max}, ${:.6} was spent, and the next request may cost up to ${:.6}",
                st.spent.cost_usd, bound.cost_usd
            ));
        }
        None
    }

    fn release(&self, bound: Spend, actual: Spend) {
        let mut st = self.state.lock().expect("ledger lock");
        st.reserved = st.reserved.minus(bound);
        st.spent = st.spent.plus(actual);
        st.in_flight -= 1;
        drop(st);
        self.settled.notify_waiters();
    }
}

impl Reservation<'_> {
    /// The call is done and used `actual`.
    pub fn settle(mut self, actual: Spend) {
        self.settled = true;
        self.ledger.release(self.bound, actual);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.ledger.release(self.bound, self.bound);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;
    use crate::scenario::budget::Price;

    fn caps(
        max_requests: Option<u64>,
        max_tokens: Option<u64>,
        max_cost_usd: Option<f64>,
    ) -> Budget {
        Budget {
            max_requests,
            max_tokens,
            max_cost_usd,
        }
    }

    fn tokens(n: u64) -> Spend {
        Spend {
            requests: 1,
            tokens: n,
            cost_usd: 0.0,
        }
    }

    #[tokio::test]
    async fn a_call_that_fits_only_after_others_settle_waits_for_them() {
        let ledger = Ledger::new(caps(None, Some(100), None), Spend::default());
        let a = ledger.reserve(tokens(60)).await.unwrap();
        let waiting = ledger.reserve(tokens(60));
        tokio::pin!(waiting);
        // Not yet: 60 reserved + 60 > 100.
        assert!((&mut waiting).now_or_never().is_none());
        a.settle(tokens(30));
        let b = waiting.await.expect("30 spent + 60 fits in 100");
        b.settle(tokens(60));
        assert_eq!(ledger.spent().tokens, 90);
        let err = ledger
            .reserve(tokens(20))
            .await
            .err()
            .expect("90 + 20 > 100");
        assert!(err.contains("max_tokens is 100, 90 were spent"), "{err}");
    }

    #[tokio::test]
    async fn caps_count_what_was_spent_before_a_resume() {
        let before = Spend {
            requests: 9,
            tokens: 0,
            cost_usd: 0.0,
        };
        let ledger = Ledger::new(caps(Some(10), None, None), before);
        ledger.reserve(tokens(1)).await.unwrap().settle(tokens(1));
        let err = ledger.reserve(tokens(1)).await.err().unwrap();
        assert!(err.contains("max_requests is 10 and 10 requests"), "{err}");
    }

    #[tokio::test]
    async fn cost_is_capped_and_an_unsettled_reservation_counts_in_full() {
        let price = Some(Price {
            input: 1.0,
            output: 2.0,
        });
        let ledger = Ledger::new(caps(None, None, Some(0.004)), Spend::default());
        // 1000 in + 1000 out = $0.003.
        drop(
            ledger
                .reserve(Spend::call(price, 1000, 1000))
                .await
                .unwrap(),
        );
        assert!((ledger.spent().cost_usd - 0.003).abs() < 1e-12);
        assert!(
            ledger
                .reserve(Spend::call(price, 1000, 1000))
                .await
                .is_err()
        );
        ledger
            .reserve(Spend::call(price, 1000, 0))
            .await
            .expect("$0.001 more fits exactly")
            .settle(Spend::call(price, 1000, 0));
    }
}

//! How many packets a sender may send next: a count, a duration and a
//! rate cap turned into "send n", "wait", or "done". Shared by the flows and
//! the load generator, and testable without sockets.

use std::time::{Duration, Instant};

use super::{TrafficError, MAX_RUN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Send(usize),
    Wait(Duration),
    Done,
}

#[derive(Debug, Clone)]
pub struct Budget {
    start: Instant,
    end: Instant,
    count: Option<u64>,
    rate_pps: Option<u64>,
    /// Packets that fall due together at a rate cap (1: evenly spread).
    burst: u64,
    /// When the latest burst (of more than one packet) began: the next one
    /// waits a whole spacing after it, however late it was.
    burst_began: Option<Instant>,
    sent: u64,
}

impl Budget {
    /// At least one of `count` and `duration` bounds the run; a count alone
    /// is still cut off after [`MAX_RUN`].
    pub fn new(count: Option<u64>, duration: Option<Duration>, rate_pps: Option<u64>) -> Result<Budget, TrafficError> {
        Budget::starting_at(Instant::now(), count, duration, rate_pps)
    }

    fn starting_at(
        start: Instant,
        count: Option<u64>,
        duration: Option<Duration>,
        rate_pps: Option<u64>,
    ) -> Result<Budget, TrafficError> {
        if count.is_none() && duration.is_none() {
            return Err(TrafficError::Options("give a count or a duration".into()));
        }
        if rate_pps == Some(0) {
            return Err(TrafficError::Options("a rate of 0 packets per second sends nothing".into()));
        }
        let duration = duration.unwrap_or(MAX_RUN).min(MAX_RUN);
        Ok(Budget { start, end: start + duration, count, rate_pps, burst: 1, burst_began: None, sent: 0 })
    }

    /// At a rate cap, lets packets fall due `burst` at a time (the same
    /// average rate, in bursts sent back to back). Bursts never merge: a
    /// sender that fell behind sends its late burst alone and the next one
    /// a whole spacing later, so no queue ever gets more than `burst`
    /// packets back to back (the rate is then a cap, not kept).
    pub fn in_bursts(mut self, burst: u64) -> Budget {
        self.burst = burst.max(1);
        self
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// The time by which the sender will have stopped, whatever happens.
    pub fn end(&self) -> Instant {
        self.end
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn record(&mut self, packets: u64) {
        self.record_at(Instant::now(), packets);
    }

    fn record_at(&mut self, now: Instant, packets: u64) {
        if self.burst > 1 && packets > 0 && self.sent.is_multiple_of(self.burst) {
            self.burst_began = Some(now);
        }
        self.sent += packets;
    }

    /// How many packets to send now, at most `max`, after sleeping until
    /// some are due; `None` once the run is over.
    pub fn wait_next(&self, max: usize) -> Option<usize> {
        loop {
            match self.next(max) {
                Next::Done => return None,
                Next::Wait(d) => std::thread::sleep(d),
                Next::Send(n) => return Some(n),
            }
        }
    }

    /// What to do now, sending at most `max` packets in one go.
    pub fn next(&self, max: usize) -> Next {
        self.next_at(Instant::now(), max)
    }

    fn next_at(&self, now: Instant, max: usize) -> Next {
        if now >= self.end {
            return Next::Done;
        }
        let mut allowed = max as u64;
        if let Some(count) = self.count {
            if self.sent >= count {
                return Next::Done;
            }
            allowed = allowed.min(count - self.sent);
        }
        if let Some(rate) = self.rate_pps {
            let elapsed = now - self.start;
            // Packets due by now, a burst at a time; the first burst goes out at once.
            let bursts = (elapsed.as_secs_f64() * rate as f64 / self.burst as f64) as u64 + 1;
            let due = bursts * self.burst;
            let spaced = self.next_burst_spaced();
            if due <= self.sent || spaced.is_some_and(|at| now < at) {
                let next_burst = self.sent / self.burst * self.burst;
                let scheduled = self.start + Duration::from_secs_f64(next_burst as f64 / rate as f64);
                let next_due = spaced.map_or(scheduled, |at| at.max(scheduled));
                return Next::Wait(next_due.saturating_duration_since(now).min(self.end - now));
            }
            allowed = allowed.min(due - self.sent);
            if self.burst > 1 {
                // The rest of this burst only: a late sender does not catch up.
                allowed = allowed.min(self.burst - self.sent % self.burst);
            }
        }
        Next::Send(allowed as usize)
    }

    /// Between bursts: the earliest start of the next one, a spacing after
    /// the latest one began. `None` inside a burst or without bursts.
    fn next_burst_spaced(&self) -> Option<Instant> {
        let rate = self.rate_pps?;
        if !self.sent.is_multiple_of(self.burst) {
            return None;
        }
        let spacing = Duration::from_secs_f64(self.burst as f64 / rate as f64);
        self.burst_began.map(|began| began + spacing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_needs_a_bound() {
        assert!(Budget::new(None, None, Some(10)).is_err());
        assert!(Budget::new(Some(1), None, Some(0)).is_err());
        let b = Budget::new(Some(5), None, None).unwrap();
        assert_eq!(b.end() - b.start(), MAX_RUN);
    }

    #[test]
    fn count_limits_the_batch_and_ends_the_run() {
        let t0 = Instant::now();
        let mut b = Budget::starting_at(t0, Some(100), None, None).unwrap();
        assert_eq!(b.next_at(t0, 64), Next::Send(64));
        b.record(64);
        assert_eq!(b.next_at(t0, 64), Next::Send(36));
        b.record(36);
        assert_eq!(b.next_at(t0, 64), Next::Done);
    }

    #[test]
    fn duration_ends_the_run() {
        let t0 = Instant::now();
        let b = Budget::starting_at(t0, None, Some(Duration::from_secs(2)), None).unwrap();
        assert_eq!(b.next_at(t0 + Duration::from_secs(1), 8), Next::Send(8));
        assert_eq!(b.next_at(t0 + Duration::from_secs(2), 8), Next::Done);
    }

    #[test]
    fn rate_spreads_packets_over_time() {
        let t0 = Instant::now();
        let mut b = Budget::starting_at(t0, Some(1000), None, Some(1000)).unwrap();
        assert_eq!(b.next_at(t0, 64), Next::Send(1));
        b.record(1);
        // The second packet is due 1 ms after the start.
        assert_eq!(b.next_at(t0, 64), Next::Wait(Duration::from_millis(1)));
        // 10.5 ms in: 11 due, 1 sent.
        assert_eq!(b.next_at(t0 + Duration::from_micros(10_500), 64), Next::Send(10));
    }

    #[test]
    fn bursts_keep_the_rate_and_come_back_to_back() {
        let start = Instant::now();
        let mut b = Budget::starting_at(start, None, Some(Duration::from_secs(1)), Some(1000)).unwrap().in_bursts(100);
        // The first burst is due at once, whole, even in batches of 64.
        assert_eq!(b.next_at(start, 64), Next::Send(64));
        b.record_at(start, 64);
        assert_eq!(b.next_at(start, 64), Next::Send(36));
        b.record_at(start, 36);
        // The next one 100 packets / 1000 pps = 100 ms later.
        assert_eq!(b.next_at(start, 64), Next::Wait(Duration::from_millis(100)));
        assert_eq!(b.next_at(start + Duration::from_millis(99), 500), Next::Wait(Duration::from_millis(1)));
        assert_eq!(b.next_at(start + Duration::from_millis(100), 500), Next::Send(100));
    }

    #[test]
    fn late_bursts_go_out_alone_and_push_the_next_one_back() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut b = Budget::starting_at(start, None, Some(Duration::from_secs(1)), Some(1000)).unwrap().in_bursts(100);
        assert_eq!(b.next_at(start, 500), Next::Send(100));
        b.record_at(start, 100);
        // 350 ms in, three more bursts fell due; only one goes out...
        assert_eq!(b.next_at(start + ms(350), 500), Next::Send(100));
        b.record_at(start + ms(350), 50);
        assert_eq!(b.next_at(start + ms(351), 500), Next::Send(50));
        b.record_at(start + ms(351), 50);
        // ...and the next one a whole spacing after it began, not at once.
        assert_eq!(b.next_at(start + ms(360), 500), Next::Wait(ms(90)));
        assert_eq!(b.next_at(start + ms(450), 500), Next::Send(100));
        b.record_at(start + ms(450), 100);
        // And the one after that a spacing after it in turn.
        assert_eq!(b.next_at(start + ms(460), 500), Next::Wait(ms(90)));
    }

    #[test]
    fn without_bursts_a_late_sender_catches_up() {
        let t0 = Instant::now();
        let mut b = Budget::starting_at(t0, Some(1000), None, Some(1000)).unwrap();
        b.record_at(t0, 1);
        assert_eq!(b.next_at(t0 + Duration::from_millis(50), 64), Next::Send(50));
    }
}

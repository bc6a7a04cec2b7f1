//! The fair share of a stream's leases, decided without I/O: which leases
//! a worker adopts, which it takes, and which it asks another worker to hand
//! over. The coordinator ([`super::lease`]) reads the lease table, judges
//! expiry by its own clock, and writes what this decides.
//!
//! A lease may be read once its shard is open (or closed and not yet read to
//! its end) and each of its parents is read to its end. The share is the
//! readable leases divided by the live workers (this one included), rounded
//! up. A worker below it takes free and expired leases, then asks the most
//! loaded other worker for what that one holds above the share (or for one
//! lease, when it holds exactly the share and this worker is two or more
//! below it).

use std::collections::{BTreeMap, BTreeSet};

use super::lease::Lease;

/// What one worker sees of its group.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// This worker's name.
    pub me: &'a str,
    /// Every lease of the stream, as read from the table.
    pub leases: &'a [Lease],
    /// The leases (by key) this worker holds and reads.
    pub held: &'a BTreeSet<String>,
    /// The leases (by key) of other workers whose counter did not move for
    /// the failover time: their owner is taken for dead.
    pub expired: &'a BTreeSet<String>,
}

/// What a worker does in one pass.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The readable leases each live worker holds (this one always listed).
    pub per_worker: BTreeMap<&'a str, Vec<&'a Lease>>,
    /// Leases that may be read now.
    pub readable: usize,
    /// Leases whose parents are not read to their end yet.
    pub waiting: usize,
    /// Shards read to their end.
    pub finished: usize,
    /// The fair share.
    pub target: usize,
    /// Leases the table gives this worker that it does not hold (handed over
    /// to it, or it restarted under the same name): adopted whatever the
    /// share, since nobody else reads them.
    pub adopt: Vec<&'a Lease>,
    /// Leases this worker asked for that are on their way: they count as its own.
    pub asked: usize,
    /// Leases without a live owner, to take while below the share.
    pub free: Vec<&'a Lease>,
    me: &'a str,
}

/// Decides a pass.
pub fn plan<'a>(v: &View<'a>) -> Plan<'a> {
    let done: BTreeSet<&str> = v
        .leases
        .iter()
        .filter(|l| l.shard_end)
        .map(|l| l.shard.as_str())
        .collect();
    let present: BTreeSet<&str> = v.leases.iter().map(|l| l.shard.as_str()).collect();
    let parents_done = |l: &Lease| {
        l.parents
            .iter()
            .all(|p| done.contains(p.as_str()) || !present.contains(p.as_str()))
    };
    let readable: Vec<&Lease> = v
        .leases
        .iter()
        .filter(|l| !l.shard_end && parents_done(l))
        .collect();
    let expired = |l: &Lease| v.expired.contains(&l.key);
    let mine = |l: &Lease| l.owner.as_deref() == Some(v.me);
    let mut per_worker: BTreeMap<&str, Vec<&Lease>> = BTreeMap::new();
    per_worker.entry(v.me).or_default();
    for l in &readable {
        match l.owner.as_deref() {
            Some(o) if o == v.me && v.held.contains(&l.key) => {
                per_worker.entry(v.me).or_default().push(l)
            }
            Some(o) if o != v.me && !expired(l) => per_worker.entry(o).or_default().push(l),
            _ => {}
        }
    }
    Plan {
        target: readable.len().div_ceil(per_worker.len()),
        per_worker,
        waiting: v
            .leases
            .iter()
            .filter(|l| !l.shard_end && !parents_done(l))
            .count(),
        finished: done.len(),
        adopt: readable
            .iter()
            .filter(|l| mine(l) && !v.held.contains(&l.key))
            .copied()
            .collect(),
        asked: readable
            .iter()
            .filter(|l| l.handoff_to.as_deref() == Some(v.me) && !mine(l) && !expired(l))
            .count(),
        free: readable
            .iter()
            .filter(|l| l.owner.is_none() || expired(l))
            .copied()
            .collect(),
        readable: readable.len(),
        me: v.me,
    }
}

impl<'a> Plan<'a> {
    /// The leases this worker counts as its own before taking any: those it
    /// holds and those on their way to it.
    pub fn mine(&self) -> usize {
        self.per_worker.get(self.me).map_or(0, Vec::len) + self.asked
    }

    /// The leases to ask for, once this worker counts `mine` as its own,
    /// in the order to ask (the most loaded worker's, highest shard first;
    /// none already being handed over).
    pub fn to_ask(&self, mine: usize) -> Vec<&'a Lease> {
        let Some((_, theirs)) = self
            .per_worker
            .iter()
            .filter(|(w, _)| **w != self.me)
            .max_by_key(|(w, v)| (v.len(), std::cmp::Reverse(**w)))
        else {
            return Vec::new();
        };
        let spare = if theirs.len() > self.target {
            theirs.len() - self.target
        } else if theirs.len() == self.target && mine + 1 < self.target {
            1
        } else {
            0
        };
        let mut theirs: Vec<&Lease> = theirs
            .iter()
            .filter(|l| l.handoff_to.is_none())
            .copied()
            .collect();
        theirs.sort_by(|a, b| b.shard.cmp(&a.shard));
        theirs.truncate(spare);
        theirs
    }

    /// How many more leases this worker wants, once it counts `mine`.
    pub fn want(&self, mine: usize) -> usize {
        self.target.saturating_sub(mine)
    }

    /// What to ask for once this worker counts `mine` as its own and has
    /// taken `taken` free leases.
    pub fn asks(&self, mine: usize, taken: usize) -> Vec<&'a Lease> {
        let mut asks = self.to_ask(mine);
        asks.truncate(self.want(mine).saturating_sub(taken));
        asks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease of shard `s-N`; `owner` `-` for none; `end` read to its end.
    fn lease(n: u32, owner: &str) -> Lease {
        Lease {
            key: format!("p/s/s-{n}"),
            shard: format!("s-{n}"),
            owner: (owner != "-").then(|| owner.to_owned()),
            counter: 1,
            checkpoint: None,
            shard_end: false,
            parents: Vec::new(),
            handoff_to: None,
        }
    }

    fn keys(leases: &[&Lease]) -> Vec<String> {
        leases.iter().map(|l| l.shard.clone()).collect()
    }

    struct Case {
        name: &'static str,
        leases: Vec<Lease>,
        /// Shards (numbers) `me` holds.
        held: Vec<u32>,
        /// Shards (numbers) whose owner is taken for dead.
        expired: Vec<u32>,
        /// target, adopt, free, asks (once the adopted leases are counted)
        expect: (
            usize,
            Vec<&'static str>,
            Vec<&'static str>,
            Vec<&'static str>,
        ),
    }

    fn run(c: &Case) {
        let held: BTreeSet<String> = c.held.iter().map(|n| format!("p/s/s-{n}")).collect();
        let expired: BTreeSet<String> = c.expired.iter().map(|n| format!("p/s/s-{n}")).collect();
        let p = plan(&View {
            me: "me",
            leases: &c.leases,
            held: &held,
            expired: &expired,
        });
        // Every take succeeds.
        let mine = p.mine() + p.adopt.len();
        let taken = p.free.len().min(p.want(mine));
        let got = (
            p.target,
            keys(&p.adopt),
            keys(&p.free),
            keys(&p.asks(mine, taken)),
        );
        let expect = (
            c.expect.0,
            c.expect.1.iter().map(|s| (*s).to_owned()).collect(),
            c.expect.2.iter().map(|s| (*s).to_owned()).collect(),
            c.expect.3.iter().map(|s| (*s).to_owned()).collect(),
        );
        assert_eq!(got, expect, "{}", c.name);
    }

    #[test]
    fn the_share_is_taken_asked_for_and_kept_as_the_table_says() {
        let ended = |mut l: Lease| {
            l.shard_end = true;
            l
        };
        let child = |mut l: Lease, parents: &[u32]| {
            l.parents = parents.iter().map(|p| format!("s-{p}")).collect();
            l
        };
        let handoff = |mut l: Lease, to: &str| {
            l.handoff_to = Some(to.to_owned());
            l
        };
        let cases = [
            Case {
                name: "alone, every lease free: all of them",
                leases: (0..4).map(|n| lease(n, "-")).collect(),
                held: vec![],
                expired: vec![],
                expect: (4, vec![], vec!["s-0", "s-1", "s-2", "s-3"], vec![]),
            },
            Case {
                name: "a worker joins: half the share, asked of the loaded one, highest shards first",
                leases: (0..4).map(|n| lease(n, "a")).collect(),
                held: vec![],
                expired: vec![],
                expect: (2, vec![], vec![], vec!["s-3", "s-2"]),
            },
            Case {
                name: "a worker died: its leases are free",
                leases: vec![
                    lease(0, "me"),
                    lease(1, "me"),
                    lease(2, "dead"),
                    lease(3, "dead"),
                ],
                held: vec![0, 1],
                expired: vec![2, 3],
                expect: (4, vec![], vec!["s-2", "s-3"], vec![]),
            },
            Case {
                name: "handed over to me: adopted; asked for: counted as mine, not asked twice",
                leases: vec![
                    lease(0, "me"),
                    handoff(lease(1, "a"), "me"),
                    lease(2, "a"),
                    lease(3, "a"),
                ],
                held: vec![],
                expired: vec![],
                expect: (2, vec!["s-0"], vec![], vec![]),
            },
            Case {
                name: "two workers asking at once: a lease on its way to one is not asked for by the other",
                leases: vec![
                    handoff(lease(0, "a"), "b"),
                    lease(1, "a"),
                    lease(2, "a"),
                    lease(3, "b"),
                ],
                held: vec![],
                expired: vec![],
                // 4 readable, 3 workers: share 2; a holds one above it, and
                // s-0 is on its way to b: s-2 is asked for (a declines what
                // it cannot spare).
                expect: (2, vec![], vec![], vec!["s-2"]),
            },
            Case {
                name: "even: nothing to take or ask",
                leases: vec![lease(0, "me"), lease(1, "me"), lease(2, "a"), lease(3, "a")],
                held: vec![0, 1],
                expired: vec![],
                expect: (2, vec![], vec![], vec![]),
            },
            Case {
                name: "two below a share the others hold exactly: one lease of the first of them",
                leases: vec![
                    lease(0, "a"),
                    lease(1, "a"),
                    lease(2, "a"),
                    lease(3, "b"),
                    lease(4, "b"),
                    lease(5, "b"),
                    lease(6, "me"),
                ],
                held: vec![6],
                expired: vec![],
                expect: (3, vec![], vec![], vec!["s-2"]),
            },
            Case {
                name: "resharding: a child waits for its parents, a finished shard is not shared",
                leases: vec![
                    ended(lease(0, "a")),
                    lease(1, "a"),
                    child(lease(2, "-"), &[0]),
                    child(lease(3, "-"), &[1]),
                ],
                held: vec![],
                expired: vec![],
                // readable: s-1 (a) and s-2 (free; its parent ended); s-3 waits.
                expect: (1, vec![], vec!["s-2"], vec![]),
            },
        ];
        for c in &cases {
            run(c);
        }
    }

    #[test]
    fn the_status_counts_readable_waiting_and_finished_leases() {
        let mut ended = lease(0, "a");
        ended.shard_end = true;
        let mut child = lease(2, "-");
        child.parents = vec!["s-1".into()];
        let leases = vec![ended, lease(1, "a"), child];
        let none = BTreeSet::new();
        let p = plan(&View {
            me: "me",
            leases: &leases,
            held: &none,
            expired: &none,
        });
        assert_eq!((p.readable, p.waiting, p.finished), (1, 1, 1));
        let per: Vec<(&str, usize)> = p.per_worker.iter().map(|(w, l)| (*w, l.len())).collect();
        assert_eq!(per, [("a", 1), ("me", 0)]);
        assert_eq!(p.want(p.mine()), 1);
    }
}

"""Why `hetero`'s lowest team stays under 0.9 at scale 1.0: bench/hetero.py's twin run with
counters added (bench/RESULTS.md section 86). Nothing the policy decides changes: the run's
figures are bench/hetero.py's, and one more JSON line follows them.

    python bench/hetero_diag.py --seed 0        # cortex-2026, scale 1.0, days 2-4, ~3 CPU min

Counted (window only, i.e. after --warmup-days):
- every deep-pass reservation of a head short on several flavors (`reserve_earliest`): the
  flavor the reservation's cut count walk picks (the rule) against the one an uncut walk
  (every running job's end) would pick, and whether the cut walk's shadow was the earlier;
- per big head (4,096 GPUs or more) that held a reservation in the window: when it first
  reserved, how long it waited, where it started, how often its reserved flavor changed;
  why it changed (section 89: `open`, its last flavor was still open to it and another was
  chosen; `taken`, a head ahead of it in this pass had reserved its last flavor; `not_short`,
  it no longer lacked GPUs there), and how far its last flavor's cut shadow was behind the
  earliest one, in hours, at each multi-flavor reservation (`last_flavor_gap_h`, bins by
  upper bound);
- hourly: the free GPUs on flavors a head holds reserved against open ones, and, from one
  explained deep pass on the hour's state (not applied: `schedule(commit=False)`, with the
  allocator's last targets, no solve), the GPUs waiting by team, class, band and reasons, and
  behind whose head.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import hetero

PATCH = r"""
import math as _m
from collections import Counter as _C, defaultdict as _dd
import dataclasses as _dc
import cortex.scheduler.cycle as _cyc
from cortex.scheduler import shadow as _sh
from cortex.fleet.topology import alloc_size as _alloc
from cortex.scheduler.snapshot import Snapshot as _Snap

G = dict(skip=False, cyc=None, win=False, calls=0, pairs=_C(), cut_early=_C(), heads={},
         free_res=_dd(float), free_open=_dd(float), holder=_dd(float), nsamp=0,
         wait=_dd(float), wait_head=_dd(float), gap=_C(), why=_C())
_reserve = _cyc._Cycle.reserve
_schedule = _cyc.schedule


def _uncut(st, stmt, f, need, now):
    # shadow.shadow without the SHADOW_WALK_MAX cut.
    acc = st.free_gpus[f]
    if acc >= need and need > st.gpn[f]:
        acc = 0
    ev = stmt.evicted
    for end_s, jid, g in st.ends[f]:
        if ev and jid in ev:
            continue
        acc += g
        if acc >= need:
            return max(end_s, now)
    return _m.inf


def _counted_reserve(self, job, short):
    G['cyc'] = self
    if G['skip']:
        return _reserve(self, job, short)
    fl = self.st.topo.flavors
    cand = [f for f in short if f not in self.reserved]
    choice = None
    if self.pol.backfill and self.deep and self.pol.reserve_earliest and len(cand) > 1:
        st, now = self.st, self.snap.now_s
        cut, full = {}, {}
        for f in cand:
            need = _alloc(job.gpus, st.gpn[f])
            cut[f] = _sh.shadow(st, self.stmt, f, need, now)[0]
            full[f] = _uncut(st, self.stmt, f, need, now)
        cc = min(cand, key=lambda f: cut[f])
        hd = G['heads'].get(job.id)
        if (G['win'] and hd is not None and hd['last'] in cut and job.gpus >= 4096
                and cut[cc] < _m.inf):
            gap = (cut[hd['last']] - cut[cc]) / 3600
            b = next(x for x in (0, 1, 4, 12, 24, 48, _m.inf) if gap <= x)
            G['gap'][b] += 1
        ec = min(cand, key=lambda f: full[f])
        choice = (fl[cc], fl[ec])
        if G['win']:
            G['calls'] += 1
            G['pairs'][choice] += 1
            G['cut_early'][(fl[cc], cut[cc] < full[cc])] += 1
    h0 = G['heads'].get(job.id)
    why = None
    if h0 is not None and h0['last'] is not None:
        lf = h0['last']
        why = 'open' if lf in cand else ('taken' if lf in self.reserved else 'not_short')
    _reserve(self, job, short)
    got = [f for f, r in self.reserved.items() if r.head == job.id]
    if not got or job.gpus < 4096:
        return
    h = G['heads'].get(job.id)
    if h is None:
        h = G['heads'][job.id] = dict(team=job.team, gpus=job.gpus, first=self.snap.now_s,
                                      win=False, start=None, at=None, deep=_C(), flips=0,
                                      last=None)
    h['win'] = h['win'] or G['win']
    if self.deep:
        h['deep'][fl[got[0]]] += 1
        if h['last'] is not None and h['last'] != got[0]:
            h['flips'] += 1
            if G['win']:
                G['why'][why] += 1
        h['last'] = got[0]


_cyc._Cycle.reserve = _counted_reserve


class DiagTwin(MeteredTwin):
    def _start(self, s, committed=False):
        h = G['heads'].get(s.job.id)
        if h is not None and h['start'] is None:
            h['start'], h['at'] = self.now, self.topo.flavors[s.flavor]
        super()._start(s, committed)

    def _advance(self, t):
        if self.next_sample_s <= t and self.next_sample_s < self.horizon_s:
            self.now = self.next_sample_s
            G['win'] = True
            self._sample()
        super()._advance(t)

    def _sample(self):
        # One explained deep pass on the hour's state, rolled back, with the last targets.
        snap = _Snap(self.now, self.state, self.pending, self._speed, self._estimate_s, None,
                     lost_s=self._lost_s)
        snap = _dc.replace(snap, targets=self._allocation.targets)
        G['skip'], G['cyc'] = True, None
        try:
            plan = _schedule(snap, self.pol, deep=True, commit=False, explain=True)
        finally:
            G['skip'] = False
        G['nsamp'] += 1
        fl, st = self.topo.flavors, self.state
        res = G['cyc'].reserved if G['cyc'] is not None else {}
        for f in range(len(fl)):
            if f in res:
                G['free_res'][fl[f]] += st.free_gpus[f]
                hd = self._by_id.get(res[f].head)
                if hd is not None and hd.gpus >= 4096:
                    G['holder'][(fl[f], hd.team, hd.gpus)] += 1
            else:
                G['free_open'][fl[f]] += st.free_gpus[f]
        started = {x.job.id for x in plan.starts}
        for j in self.pending:
            if j.id in started:
                continue
            rs = plan.reasons_for(j.id)
            band = 'big' if j.gpus >= 4096 else 'mid'
            codes = '+'.join(sorted({r.code.value for r in rs})) or 'none'
            G['wait'][(j.team, j.priority, band, codes)] += j.gpus
            for r in rs:
                if r.code.value == 'ReservedForHead':
                    hd = self._by_id.get(r.detail.get('head'))
                    key = (j.team, band, r.detail.get('flavor'), hd.team if hd else '?',
                           hd.gpus if hd else 0)
                    G['wait_head'][key] += j.gpus
"""

REPORT = r"""
end_s = days * 86400.0
n = max(G['nsamp'], 1)
big = [h for h in G['heads'].values() if h['win']]
print(json.dumps({"diag": {
    "multi_flavor_reservations": G['calls'],
    "cut_vs_uncut_choice": {f"{a}->{b}": v for (a, b), v in G['pairs'].most_common()},
    "cut_shadow_earlier_on_choice": {f"{a}/{b}": v for (a, b), v in sorted(G['cut_early'].items())},
    "big_heads": [dict(team=h['team'], gpus=h['gpus'], first_h=round(h['first'] / 3600, 1),
                       waited_h=round(((h['start'] if h['start'] is not None else end_s)
                                       - h['first']) / 3600, 1),
                       started_on=h['at'], deep_passes_by_flavor=dict(h['deep']),
                       flips=h['flips']) for h in big],
    "big_head_flips_by_cause": dict(G['why']),
    "last_flavor_gap_h": {str(k): v for k, v in sorted(G['gap'].items())},
    "free_on_reserved_flavors": {k: round(v / n) for k, v in G['free_res'].items()},
    "free_on_open_flavors": {k: round(v / n) for k, v in G['free_open'].items()},
    "reserved_by_big_head_hours": {"/".join(map(str, k)): v
                                   for k, v in sorted(G['holder'].items())},
    "waiting_gpus": {"/".join(map(str, k)): round(v / n)
                     for k, v in sorted(G['wait'].items(), key=lambda x: -x[1]) if v / n >= 100},
    "waiting_behind_head_gpus": {"/".join(map(str, k)): round(v / n)
                                 for k, v in sorted(G['wait_head'].items(), key=lambda x: -x[1])
                                 if v / n >= 100},
}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--fleet", default="cortex-2026")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fleet-scale", type=float, default=1.0)
    ap.add_argument("--days", type=float, default=4.0)
    ap.add_argument("--warmup-days", type=float, default=2.0)
    args = ap.parse_args()
    code = hetero.TWIN.format(days=args.days, policy="hetero", fleet=args.fleet, seed=args.seed,
                              fleet_scale=args.fleet_scale, warm=True,
                              warmup_days=args.warmup_days)  # fmt: skip
    code = code.replace("days, policy = ", PATCH + "\ndays, policy = ", 1)
    code = code.replace("tw = MeteredTwin(", "tw = DiagTwin(", 1) + REPORT
    proc = subprocess.run([hetero.PY, "-c", code], capture_output=True, text=True,
                          cwd=hetero.ROOT, check=False)  # fmt: skip
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(proc.returncode)


if __name__ == "__main__":
    main()

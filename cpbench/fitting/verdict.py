"""Whether a time model is good enough to act on, and what to do when it is not: its held-out error
against the goal, beside the noise of the machine it was measured on (how far a network's rounds
spread, how steady the co-measured reference was). A model that misses on a noisy machine wants a
quieter hour or more rounds; one that misses on a quiet machine wants another design."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

GOAL_MAPE = 0.05
GOAL_WITHIN_10 = 0.95
NOISY_FLOOR = 0.025  # a network's rounds spreading by half the MAPE goal: the machine, not the model, is the limit
NOISY_OFF_SHARE = 0.2  # a fifth of the measurements bracketed by a reference off its quiet level


def calibration_noise(calibration) -> dict:
    """The noise of a calibration's machine while it ran: the calibration networks' median and 90th
    percentile round spread ((max - min) / median of the per-round minima), the reference's spread
    and the share of measurements it flagged, and how many items' rounds still disagreed."""
    from cpbench.timing.calibration_record import round_spread

    spreads = [round_spread(e["mins"]) for e in calibration.networks.values() if len(e["mins"]) > 1]
    reference = calibration.reference or {}
    plan = calibration.plan or {}
    return {
        "network_spread_median": float(np.median(spreads)) if spreads else None,
        "network_spread_p90": float(np.quantile(spreads, 0.9)) if spreads else None,
        "reference_spread": reference.get("spread"), "reference_off_share": reference.get("off_share"),
        "remeasured": reference.get("remeasured"), "noisy_share": plan.get("noisy_share"),
        "budget_s": plan.get("budget_s"), "over_budget": plan.get("over_budget"),
    }


@dataclass(frozen=True)
class Verdict:
    good: bool
    mape: float
    within_10: float
    n: int
    noise_floor: float | None  # the calibration networks' median round spread
    noisy: bool  # the machine's noise alone could explain a miss
    advice: str

    def line(self) -> str:
        floor = f"; noise floor {self.noise_floor:.1%} (networks' round spread)" if self.noise_floor is not None else ""
        head = "good" if self.good else "POOR"
        return (f"calibration {head}: held-out MAPE {self.mape:.1%} (goal <= {GOAL_MAPE:.0%}), {self.within_10:.0%} within "
                f"±10 % (goal >= {GOAL_WITHIN_10:.0%}) on {self.n} networks it did not see{floor}; {self.advice}")

    def as_dict(self) -> dict:
        return asdict(self)


def judge(mape: float, within_10: float, n: int, noise: dict, device: str, shipped: bool = False) -> Verdict:
    """The verdict on a model's held-out figures, with advice that follows from the noise beside them;
    a shipped reference model is judged on its own machine, and the advice is to calibrate this one."""
    good = bool(mape <= GOAL_MAPE and within_10 >= GOAL_WITHIN_10)
    floor = noise.get("network_spread_median")
    off = noise.get("reference_off_share")
    noisy = bool((floor is not None and floor > NOISY_FLOOR) or (off is not None and off > NOISY_OFF_SHARE))
    if shipped:
        advice = (f"judged on the machine the shipped model was measured on, not this one: calibrate this one with "
                  f"'cpbench calibrate --device {device}'")
    elif good:
        advice = "answers from it can be acted on"
    elif noisy:
        advice = (f"the machine was noisy while it ran: calibrate again at a quieter hour (stop other work), or give it "
                  f"more rounds: 'cpbench calibrate --device {device} --budget 20m'")
    elif floor is None:
        advice = f"its noise is not on record: calibrate again with 'cpbench calibrate --device {device}'"
    else:
        advice = (f"the model misses beyond the machine's noise: try the other design ('cpbench calibrate --device {device} "
                  "--whole' or '--blocks', or '--pairs')")
    return Verdict(good, float(mape), float(within_10), int(n), floor, noisy, advice)

"""Holdout arms (crm_campaigns.holdout): deterministic, proportional, the same in any process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crm_campaigns.domain import Arm
from crm_campaigns.holdout import arm_of

CONTACTS = [f"contact-{i}" for i in range(10_000)]


def held_out(campaign_id: str, share: float) -> set[str]:
    return {c for c in CONTACTS if arm_of(campaign_id, c, share) is Arm.HOLDOUT}


def test_a_contact_gets_the_same_arm_every_time() -> None:
    arms = {arm_of("spring-sale", "contact-42", 0.5) for _ in range(100)}
    assert len(arms) == 1


def test_the_arm_does_not_depend_on_the_processs_hash_seed() -> None:
    script = (
        "from crm_campaigns.holdout import arm_of\n"
        "print(''.join('h' if arm_of('spring-sale', f'c{i}', 0.5) == 'holdout' else 't'"
        " for i in range(200)))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    expected = "".join(
        "h" if arm_of("spring-sale", f"c{i}", 0.5) is Arm.HOLDOUT else "t" for i in range(200)
    )
    assert outputs == {expected + "\n"}


def test_the_draw_is_pinned_to_sha256_of_the_two_ids() -> None:
    # sha256("spring-sale\0contact-3") starts 0x024462fc3f0be693, a draw of 0.00886; a
    # change of hash, byte order or separator would move it.
    assert arm_of("spring-sale", "contact-3", 0.0089) is Arm.HOLDOUT
    assert arm_of("spring-sale", "contact-3", 0.0088) is Arm.TREATED


@pytest.mark.parametrize("share", [0.05, 0.1, 0.5, 0.9])
def test_about_the_share_of_contacts_is_held_out(share: float) -> None:
    expected = share * len(CONTACTS)
    spread = 4 * (len(CONTACTS) * share * (1 - share)) ** 0.5  # four standard deviations
    assert abs(len(held_out("spring-sale", share)) - expected) < spread


def test_a_larger_share_holds_out_everyone_a_smaller_one_did() -> None:
    assert held_out("spring-sale", 0.1) <= held_out("spring-sale", 0.3)


def test_campaigns_draw_their_holdouts_independently() -> None:
    both = held_out("spring-sale", 0.5) & held_out("autumn-sale", 0.5)
    assert abs(len(both) - 2_500) < 4 * (10_000 * 0.25 * 0.75) ** 0.5


def test_share_zero_holds_out_no_one_and_share_one_everyone() -> None:
    assert held_out("spring-sale", 0.0) == set()
    assert held_out("spring-sale", 1.0) == set(CONTACTS)


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        arm_of("spring-sale", "contact-1", share)

"""The bookkeeping of claims (tests/claims.py): every "What you should see" box and every
solution of every chapter is asserted by at least one test on the chapter's own results, and
every name a test claims exists in a chapter."""

from __future__ import annotations

from claims import NO_RESULT_CLAIMS, boxes_and_solutions, claimed_in_tests


def test_every_box_has_a_name():
    unnamed = [name for name in boxes_and_solutions() if name.startswith("<unnamed")]
    assert not unnamed, (
        "these 'What you should see' boxes have no `:name:` (add `:name: box-<chapter>-<what>` "
        "as the box's first line, then a test with @claims(...)):\n" + "\n".join(unnamed)
    )


def test_every_box_and_solution_is_claimed_by_a_test():
    claimed = claimed_in_tests()
    missing = [
        f"{name} ({where})"
        for name, where in boxes_and_solutions().items()
        if not name.startswith("<unnamed") and name not in claimed and name not in NO_RESULT_CLAIMS
    ]
    assert not missing, (
        "no test asserts the claims of these boxes/solutions; write one decorated with "
        "@claims(name) that checks each claim on the chapter's own results (or, for a solution "
        "that makes no claim about results, list it in tests/claims.py's NO_RESULT_CLAIMS "
        "with the reason):\n" + "\n".join(missing)
    )


def test_claims_name_existing_boxes_and_solutions():
    known = boxes_and_solutions()
    stale = [
        f"{name} (in {', '.join(tests)})" for name, tests in claimed_in_tests().items() if name not in known
    ]
    stale += [f"{name} (in NO_RESULT_CLAIMS)" for name in NO_RESULT_CLAIMS if name not in known]
    assert not stale, "these names match no box or solution of any chapter:\n" + "\n".join(stale)


def test_no_result_claims_give_reasons():
    for name, reason in NO_RESULT_CLAIMS.items():
        assert isinstance(reason, str) and len(reason.split()) >= 3, f"{name}: give the reason in words"

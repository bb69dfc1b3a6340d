"""The Ray side of a sweep that needs no Ray: the token file kept to its owner."""

from __future__ import annotations

import stat

from recsys.tuning.resources import secure_token


def test_the_ray_token_is_readable_by_its_owner_alone(tmp_path):
    made = secure_token(tmp_path / ".ray" / "auth_token")  # missing: made 0600
    assert stat.S_IMODE(made.stat().st_mode) == 0o600 and len(made.read_text()) >= 32
    open_file = tmp_path / "open_token"
    open_file.write_text("t" * 64)
    open_file.chmod(0o644)  # as Ray writes it
    secure_token(open_file)
    assert stat.S_IMODE(open_file.stat().st_mode) == 0o600 and open_file.read_text() == "t" * 64

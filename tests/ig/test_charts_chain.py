"""Charts are server-rendered SVG of the right daily counts; the chain page verifies and keeps
a signed checkpoint."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from audit.daily import daily
from audit.entry import time_text
from audit.keys import KEY_FILE
from audit.writer import append_batch
from engine.db import make_engine, scratch_store
from engine.ig import chain
from engine.migrate import upgrade
from engine.settings import Settings
from engine.web.charts import bars
from tests.api.conftest import NHS, Store, Token
from tests.api.test_access import REASON, everything, post
from tests.audit.test_keys import UNSUPPORTED_PRIVATE
from tests.audit.trail import as_owner, entry, fill, rewrite
from tests.conftest import BACKEND
from tests.ig.conftest import officer
from tests.ig.test_console import csrf


def _e(day: int, **over: object) -> dict[str, object]:
    when = time_text(datetime(2026, 12, day, 9, tzinfo=UTC))
    doc: dict[str, object] = {
        "seq": day, "time": when, "action": "everything", "outcome": "permit",
        "user_id": "u1", "patient_id": "p1", "org": "R9Z", "profile": "clinical",
    }  # fmt: skip
    return doc | over


def test_daily_counts_by_org_profile_refusals_and_break_glass() -> None:
    entries = [_e(1), _e(1, org="Y00001", profile="admin"), _e(2, outcome="deny"),
               _e(3, action="break-glass"), _e(3, action="login", patient_id=None)]  # fmt: skip
    counts = daily(entries, date(2026, 12, 1), date(2026, 12, 3))
    assert counts.days == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert counts.by_org == {"R9Z": [1, 0, 0], "Y00001": [1, 0, 0]}
    assert counts.by_profile == {"admin": [1, 0, 0], "clinical": [1, 0, 0]}
    assert counts.refusals == [0, 1, 0] and counts.break_glass == [0, 0, 1]


def test_bars_are_well_formed_svg_with_escaped_names() -> None:
    svg = bars("Accesses <by> org", ["2026-12-01", "2026-12-02"], {"A & B": [2, 0], "C": [1, 3]})
    root = ET.fromstring(str(svg))
    rects = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find("*") is not None]
    assert len(rects) == 3
    assert root.find("{http://www.w3.org/2000/svg}title").text == "Accesses <by> org"  # type: ignore[union-attr]


def test_charts_page_renders_svg_without_scripts(
    web: TestClient, token: Token, ig_token: str
) -> None:
    assert everything(web, token("gp")).status_code == 200
    post(web, token("ae-doctor"), "break-glass",
         {"patient": NHS, "reason_code": "5", "reason_text": REASON})  # fmt: skip
    officer(web, ig_token)
    page = web.get("/ig/charts").text
    assert page.count("<svg") == 4 and "<script" not in page
    assert "Riverside Surgery" in page and "break-glass" in page


def test_chain_page_shows_status_and_verify_signs_a_checkpoint(
    web: TestClient, store: Store, ig_token: str
) -> None:
    officer(web, ig_token)
    page = web.get("/ig/chain").text
    assert "none yet" in page
    verified = web.post("/ig/chain/verify", data={"csrf_token": csrf(web, "/ig/chain")}).text
    (size,) = re.findall(r"Verified: all (\d+) entries hold", verified)
    assert (store.settings.data_dir / "audit-checkpoint-latest.json").exists()
    after = web.get("/ig/chain").text
    assert re.search(rf"{size} entries, head <code>[0-9a-f]{{64}}</code>", after)
    # The first verify made the signing key, and said so (it made one silently): the IG office
    # must take its public half away from the server.
    (made,) = re.findall(r'id="new-key">[^<]*<code>([0-9a-f]{16})</code>', verified)
    assert f"by key {made}" in after and "scr audit public-key" in verified
    assert web.post("/ig/chain/verify", data={"csrf_token": "forged"}).status_code == 403
    kept = web.get("/ig/chain/checkpoint")
    assert kept.status_code == 200 and kept.json()["size"] == int(size)
    again = web.post("/ig/chain/verify", data={"csrf_token": csrf(web, "/ig/chain")}).text
    assert "Verified: all" in again and 'id="new-key"' not in again
    with as_owner(store.engine) as conn:
        conn.execute(text("UPDATE audit_entry SET body = 'not an entry' WHERE seq = 2"))
    broken = web.post("/ig/chain/verify", data={"csrf_token": csrf(web, "/ig/chain")}).text
    assert "does not verify: entry 2" in broken


def test_verify_with_a_signing_key_it_cannot_use_still_walks_and_says_why(
    web: TestClient, store: Store, ig_token: str
) -> None:
    key = store.settings.data_dir / KEY_FILE
    key.write_text(UNSUPPORTED_PRIVATE)
    key.chmod(0o600)
    officer(web, ig_token)
    page = web.post("/ig/chain/verify", data={"csrf_token": csrf(web, "/ig/chain")})
    assert page.status_code == 200
    assert re.search(r"Verified: all \d+ entries hold, but no checkpoint was signed", page.text)
    assert "not an Ed25519 key" in page.text
    assert not chain.latest_path(store.settings).exists()


def test_a_cut_short_latest_checkpoint_is_shown_as_unreadable_and_never_signed_over(
    web: TestClient, ig_token: str, store: Store
) -> None:
    """Spoiling the kept checkpoint must not get a rewritten trail walked alone and signed
    over the evidence: Verify signs nothing until IG moves the file aside."""
    latest = chain.latest_path(store.settings)
    spoiled = b'{\n  "log": "scr-audit-trail/1",\n  "si'
    latest.write_bytes(spoiled)
    officer(web, ig_token)
    page = web.get("/ig/chain")
    assert page.status_code == 200 and "latest checkpoint unreadable" in page.text
    search = web.get("/ig")
    assert search.status_code == 200 and "latest checkpoint is unreadable" in search.text
    verified = web.post("/ig/chain/verify", data={"csrf_token": csrf(web, "/ig/chain")})
    assert "no checkpoint was signed" in verified.text and "move the file aside" in verified.text
    assert latest.read_bytes() == spoiled
    latest.unlink()
    web.post("/ig/chain/verify", data={"csrf_token": csrf(web, "/ig/chain")})
    assert orjson.loads(latest.read_bytes())["log"] == "scr-audit-trail/1"
    assert "unreadable" not in web.get("/ig/chain").text
    assert [p.name for p in latest.parent.iterdir() if p.name.startswith(f".{latest.name}")] == []


def test_latest_is_never_replaced_by_an_older_checkpoint(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify A signs 3 entries; before it keeps its checkpoint, verify B runs to the end and
    keeps one of 5. A's, kept last, must not put the older checkpoint back as the latest."""
    settings = Settings(database_url="sqlite://", data_dir=tmp_path, auth_mode="dev")
    latest = chain.latest_path(settings)
    fill(engine, 3)
    keep = chain._keep
    interleaved: list[bool] = []

    def b_overtakes_a(path: Path, data: bytes, public: Any) -> None:
        if not interleaved:
            interleaved.append(True)
            append_batch(engine, [entry(4), entry(5)])
            report = chain.verify_now(engine, settings, datetime.now(UTC)).report
            assert report.size == 5
        keep(path, data, public)

    monkeypatch.setattr(chain, "_keep", b_overtakes_a)
    report = chain.verify_now(engine, settings, datetime.now(UTC)).report
    assert report.size == 3
    assert orjson.loads(latest.read_bytes())["size"] == 5
    # A later signature of as many entries does replace it, written whole, nothing left over.
    before = latest.read_bytes()
    chain.verify_now(engine, settings, datetime.now(UTC))
    assert orjson.loads(latest.read_bytes())["size"] == 5 and latest.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_edited_latest_checkpoint_is_reported_and_kept(engine: Engine, tmp_path: Path) -> None:
    """A latest file whose signature does not hold (its size edited up) is evidence that
    someone edited it: Verify says so, as ``scr audit verify --checkpoint`` does, and neither
    signs nor replaces it."""
    settings = Settings(database_url="sqlite://", data_dir=tmp_path, auth_mode="dev")
    latest = chain.latest_path(settings)
    fill(engine, 3)
    chain.verify_now(engine, settings, datetime.now(UTC))
    latest.write_bytes(orjson.dumps(orjson.loads(latest.read_bytes()) | {"size": 10**9}))
    edited = latest.read_bytes()
    report, unsigned, _ = chain.verify_now(engine, settings, datetime.now(UTC))
    assert report.intact and unsigned is not None and "signature is not valid" in unsigned
    assert latest.read_bytes() == edited


def test_verify_checks_the_trail_still_extends_the_kept_checkpoint(
    engine: Engine, tmp_path: Path
) -> None:
    """An owner's rewrite with every later hash recomputed is a valid chain: Verify checks it
    against the checkpoint it kept, names the entry, and keeps that checkpoint, the proof."""
    settings = Settings(database_url="sqlite://", data_dir=tmp_path, auth_mode="dev")
    latest = chain.latest_path(settings)
    fill(engine, 10)
    first = chain.verify_now(engine, settings, datetime.now(UTC)).report
    assert first.intact
    kept = latest.read_bytes()
    rewrite(engine, 4)
    again, unsigned, _ = chain.verify_now(
        engine, settings, datetime.now(UTC) + timedelta(seconds=1)
    )
    assert not again.intact and unsigned is None
    assert again.problem is not None and again.problem.seq == 10
    assert "rewritten" in again.problem.reason
    assert latest.read_bytes() == kept, "the proof of the rewrite was replaced"


def test_verify_never_makes_a_key_once_a_checkpoint_is_kept(engine: Engine, tmp_path: Path) -> None:
    """The key removed: Verify walks, says the key is missing, makes none and keeps the
    checkpoint. Another key in its place: Verify names both keys and signs nothing."""
    settings = Settings(database_url="sqlite://", data_dir=tmp_path, auth_mode="dev")
    latest, key = chain.latest_path(settings), tmp_path / KEY_FILE
    fill(engine, 3)
    chain.verify_now(engine, settings, datetime.now(UTC))
    kept = latest.read_bytes()
    key.unlink()
    report, unsigned, _ = chain.verify_now(engine, settings, datetime.now(UTC))
    assert report.intact and unsigned is not None and "missing" in unsigned
    assert not key.exists() and latest.read_bytes() == kept
    other = Settings(database_url="sqlite://", data_dir=tmp_path / "other", auth_mode="dev")
    (tmp_path / "other").mkdir()
    chain.verify_now(engine, other, datetime.now(UTC))  # a key made where none was kept
    (tmp_path / "other" / KEY_FILE).rename(key)
    report, unsigned, _ = chain.verify_now(engine, settings, datetime.now(UTC))
    assert report.intact and unsigned is not None
    assert orjson.loads(kept)["key_id"] in unsigned and "has changed" in unsigned
    assert latest.read_bytes() == kept


def test_after_a_restore_to_a_shorter_trail_verify_says_what_was_lost_until_ig_moves_it_aside(
    engine: Engine, tmp_path: Path
) -> None:
    """A trail restored from a backup is shorter than one signed before: Verify says entries
    the kept checkpoint saw are gone, and keeps it. Once IG has moved it aside (keeping it, as
    the record of what was lost), Verify signs the restored trail's own."""
    settings = Settings(database_url="sqlite://", data_dir=tmp_path, auth_mode="dev")
    latest = chain.latest_path(settings)
    fill(engine, 5)
    chain.verify_now(engine, settings, datetime.now(UTC))
    (tmp_path / "restored").mkdir()
    with scratch_store(BACKEND, tmp_path / "restored") as url:
        restored = make_engine(url)
        try:
            upgrade(restored)
            fill(restored, 3)
            report, unsigned, _ = chain.verify_now(restored, settings, datetime.now(UTC))
            assert not report.intact and report.problem is not None and unsigned is None
            assert report.problem.seq == 4 and "the checkpoint saw 5" in report.problem.reason
            assert orjson.loads(latest.read_bytes())["size"] == 5
            latest.rename(tmp_path / "checkpoint-before-restore.json")
            report, unsigned, _ = chain.verify_now(restored, settings, datetime.now(UTC))
            assert report.intact and report.size == 3 and unsigned is None
            assert orjson.loads(latest.read_bytes())["size"] == 3
        finally:
            restored.dispose()

"""A process killed between batches leaves no half-written person; a re-run completes the load."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from sqlalchemy import func, select

from engine.models import IngestRun, Resource, ResourceVersion, Staged
from tests.factories import nhs_numbers, s1_code, s1_patient, write_systmone

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from engine import ingest as pipeline
    from engine.db import make_engine
    from engine.settings import Settings
    from adapters.codes import load_all
    from adapters.systmone import SystmOneAdapter

    flush = pipeline._Run.flush
    done = [0]

    def flush_then_die(self):
        flush(self)
        done[0] += 1
        if done[0] == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    pipeline._Run.flush = flush_then_die
    settings = Settings(ingest_batch_size=20)
    pipeline.ingest(make_engine(sys.argv[1]), settings, load_all(), SystmOneAdapter(), sys.argv[2])
    """
)


def test_kill_between_batches_then_rerun(engine, db_url, settings, codes, tmp_path):
    nhs = nhs_numbers()
    patients = [s1_patient(str(i), next(nhs)) for i in range(1, 41)]
    observations = [s1_code(str(1000 + i), str(1 + i % 40)) for i in range(200)]
    folder = write_systmone(tmp_path / "x", patients, observations)

    proc = subprocess.run(
        [sys.executable, "-c", KILLER, db_url, str(folder)], capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Resource)).scalar() == 0
        assert conn.execute(select(IngestRun.status)).scalars().all() == ["running"]
        dead = conn.execute(select(IngestRun.id)).scalar_one()
        staged = conn.execute(select(func.count()).select_from(Staged)).scalar()
        versions = conn.execute(select(ResourceVersion.run_id)).scalars().all()
    if engine.dialect.name == "postgresql":
        # The run was one transaction: the server rolled all of it back when the process died.
        assert (staged, versions) == (0, [])
    else:
        # Its committed batches are staged, with their versions, which are its own and leave
        # with it.
        assert staged
        assert len(versions) == staged
        assert set(versions) == {dead}

    from adapters.systmone import SystmOneAdapter
    from engine.ingest import ingest

    summary = ingest(engine, settings, codes, SystmOneAdapter(), str(folder))
    assert (summary.created, summary.quarantined) == (241, 0)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Staged)).scalar() == 0
        statuses = sorted(conn.execute(select(IngestRun.status)).scalars().all())
        history = conn.execute(
            select(IngestRun.status, func.count())
            .join(ResourceVersion, ResourceVersion.run_id == IngestRun.id)
            .group_by(IngestRun.status)
        ).all()
    assert statuses == ["abandoned", "completed"]
    assert history == [("completed", 241)]

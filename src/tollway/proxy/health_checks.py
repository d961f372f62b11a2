"""Active health checks of REST targets: a probe per target every `interval_s`, off the request
path, in every worker.

Each worker probes on its own rather than one prober per node sharing its verdicts: the
workers share no memory, and the verdict a worker acts on is best formed where it is used,
beside that worker's own passive evidence (proxy/targets.py), with no channel between
processes that could itself fail or lag. The price is N probes an interval for N workers: a
GET of a small path every few seconds per target, which an upstream does not notice. Each
worker starts its probes at a random point of the interval, so that they spread out.

A probe is a fresh connection (so that it also tests connecting), `GET <base path><path>`
with `connection: close`; it passes when the answer's status is one the check accepts (any
2xx or 3xx by default) within `timeout_s`. The checks follow the snapshot: a new
configuration starts, changes or stops them within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl

from tollway.config.rest_service import ActiveHealthCheck, RestBackend, RestTarget
from tollway.config.snapshot import RuntimeConfig, SnapshotHolder
from tollway.proxy.targets import TargetPools
from tollway.proxy.upstream import UpstreamError

log = logging.getLogger("tollway.proxy")

# How often the snapshot is looked at for checks to start or stop.
_WATCH_S = 1.0


class HealthChecks:
    """The probes of one worker."""

    def __init__(self, holder: SnapshotHolder, pools: TargetPools) -> None:
        self.holder = holder
        self.pools = pools
        # (service id, target URL) -> the probing task, and what it probes with.
        self._tasks: dict[tuple[int, str], asyncio.Task[None]] = {}
        self._subjects: dict[tuple[int, str], tuple[RestBackend, RestTarget]] = {}
        self._seen: RuntimeConfig | None = None
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sync()
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self._subjects.clear()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_S)
            self.sync()

    def sync(self) -> None:
        """Start, update and stop probes to match the current snapshot."""
        config = self.holder.current
        if config is self._seen:
            return
        self._seen = config
        wanted: dict[tuple[int, str], tuple[RestBackend, RestTarget]] = {}
        tenancy = config.tenancy
        for service in tenancy.services.values() if tenancy is not None else ():
            if service.rest is None:
                continue
            for backend in service.rest.backends():
                if backend.active_check is None:
                    continue
                for target in backend.targets:
                    # One probe per target of a service, the published version's if both
                    # serving versions check it.
                    wanted.setdefault((backend.service_id, target.url), (backend, target))
        for key in list(self._tasks):
            if key not in wanted:
                self._tasks.pop(key).cancel()
                self._subjects.pop(key, None)
        loop = asyncio.get_running_loop()
        for key, subject in wanted.items():
            self._subjects[key] = subject
            if key not in self._tasks:
                self._tasks[key] = loop.create_task(self._probe_loop(key))

    async def _probe_loop(self, key: tuple[int, str]) -> None:
        backend, _ = self._subjects[key]
        assert backend.active_check is not None
        await asyncio.sleep(random.uniform(0, backend.active_check.interval_s))
        while key in self._subjects:
            backend, target = self._subjects[key]
            check = backend.active_check
            if check is None:
                return
            try:
                context = self.pools.upstream_pool(target).ssl_context
            except UpstreamError as exc:
                passed, why = False, exc.message
            else:
                passed, why = await probe(target, check, context)
            self.pools.probed(backend, target, passed, why)
            await asyncio.sleep(check.interval_s)


async def probe(
    target: RestTarget, check: ActiveHealthCheck, context: ssl.SSLContext | None
) -> tuple[bool, str]:
    """One probe: whether it passed, and why not."""
    origin = target.origin
    path = (origin.base_path + check.path).encode("latin-1")
    request = (
        b"GET %s HTTP/1.1\r\nhost: %s\r\nuser-agent: tollway-health-check\r\n"
        b"accept: */*\r\nconnection: close\r\n\r\n" % (path, target.host)
    )
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(check.timeout_s):
            reader, writer = await asyncio.open_connection(origin.host, origin.port, ssl=context)
            writer.write(request)
            line = await reader.readline()
    except TimeoutError:
        return False, f"no answer within {check.timeout_s:g} s"
    except OSError as exc:
        return False, exc.strerror or str(exc) or type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False, "not an HTTP answer"
    status = int(parts[1])
    if check.passes(status):
        return True, ""
    return False, f"answered {status}"

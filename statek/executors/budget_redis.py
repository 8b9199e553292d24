"""Shared budgets in Redis: one limit for every worker and machine (``pip install 'statek[redis]'``).

::

    STATEK_BUDGET_STORE=redis://127.0.0.1:6379/0?lease=30&on_error=refuse

Each operation is one atomic Lua script (:mod:`statek.executors.budget_lua`): reserve checks every
account of the call and holds it in all or none; settle and release are idempotent per
reservation id (a retried command counts once). A reservation is a lease: a daemon thread of this
process renews the leases of its calls in flight every third of a lease (one pipelined round trip
for all of them); a worker that dies stops renewing, and its reservations return to the pool when
the lease runs out (default 30 s; ``?lease=`` in seconds).

A call makes one round trip to reserve and one to settle. When Redis cannot be reached (connect or
read timeout: 1 s) the ``on_error`` policy decides: ``refuse`` (default: the call raises
``BudgetExceededError`` with reason ``"store"``, naming the store without credentials, nothing
sent) or ``allow`` (the call goes, unbudgeted by the shared account). Either way the error is counted
(``statek.budget.store.errors``). A settle that fails is kept and retried by the renewal thread
(the lease is renewed meanwhile, so the room stays held until the spend lands).

Redis restarted without persistence forgets the period's spend: run it with ``--appendonly yes``
for budgets that must survive a restart (``docs/budgets.md``). Reservations the restart lost are
held again by their next renewal.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from . import budget_lua
from .budget_store import Account, Claim, Grant, Refusal, StoreUnavailable, count_store_event, window_end

__all__ = ["DEFAULT_LEASE_SECONDS", "DONE_TTL_SECONDS", "RedisStore"]

DEFAULT_LEASE_SECONDS = 30.0
"""How long a reservation lives without renewal: the longest a killed worker's reservation is held."""
DONE_TTL_SECONDS = 86_400
"""How long a settled reservation's marker is kept: a settle retried within it counts once."""
TIMEOUT_SECONDS = 1.0
"""Connect and read timeout of every command: past it the store is unavailable for that call."""
_NANO = 1000  # pico-dollars per nano-dollar

_log = logging.getLogger("statek.budget")


def _nano_up(pico: int | None) -> int:
    return -1 if pico is None else -(-pico // _NANO)


def _public_url(url: str) -> str:
    """``url`` without credentials or query: what messages and metrics may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RedisStore:
    """A :class:`~statek.executors.budget_store.RemoteStore` on Redis (single node; Redis >= 6.2).

    ``client`` is a ``redis.Redis`` (inject one in tests: ``fakeredis.FakeRedis()`` works); ``clock``
    returns the time in ms to use instead of the server's (tests). Thread-safe. Its daemon thread
    renews leases every third of a lease.
    """

    def __init__(
        self,
        client: Any,
        *,
        name: str = "redis",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        allow_when_unavailable: bool = False,
        prefix: str = "statek:budget",
        clock: Any = None,
        renew_in_background: bool = True,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"a lease must be longer than 0 seconds, not {lease_seconds!r}")
        self.client = client
        self.name = name
        self.lease_seconds = lease_seconds
        self.allow_when_unavailable = allow_when_unavailable
        self.prefix = prefix
        self.clock = clock
        self.renew_in_background = renew_in_background
        """``False``: leases are renewed only by :meth:`renew_now` (tests drive time themselves)."""
        self._reserve = client.register_script(budget_lua.RESERVE)
        self._settle = client.register_script(budget_lua.SETTLE)
        self._renew = client.register_script(budget_lua.RENEW)
        self._expire = client.register_script(budget_lua.RELEASE_EXPIRED)
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[tuple[Account, ...], str]] = {}
        self._pending: dict[str, tuple[tuple[Account, ...], list[Any]]] = {}
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._wake = threading.Event()
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """The store :data:`~statek.settings.BUDGET_STORE_ENV` names (options in its query: ``lease``,
        ``on_error``, ``prefix``). Raises ``ConfigurationError`` for a bad option or a missing
        ``redis`` package."""
        from ..exceptions import ConfigurationError

        try:
            import redis
        except ImportError:
            raise ConfigurationError(
                "a redis:// budget store needs the redis package: pip install 'statek[redis]'"
            ) from None
        parts = urlsplit(url)
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        lease = options.pop("lease", str(DEFAULT_LEASE_SECONDS))
        policy = options.pop("on_error", "refuse")
        prefix = options.pop("prefix", "statek:budget")
        try:
            lease_seconds = float(lease)
            if not lease_seconds > 0:
                raise ValueError
        except ValueError:
            raise ConfigurationError(
                f"budget store option lease must be seconds above 0, not {lease!r}"
            ) from None
        if policy not in ("refuse", "allow"):
            raise ConfigurationError(f"budget store option on_error must be refuse or allow, not {policy!r}")
        plain = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(options), ""))
        client = redis.Redis.from_url(
            plain, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        return cls(
            client,
            name=_public_url(url),
            lease_seconds=lease_seconds,
            allow_when_unavailable=policy == "allow",
            prefix=prefix,
        )

    def __repr__(self) -> str:
        return f"RedisStore({self.name!r}, lease={self.lease_seconds}s)"

    # ------------------------------------------------------------------ keys
    def _keys(self, accounts: tuple[Account, ...]) -> list[str]:
        keys = []
        for account in accounts:
            base = f"{self.prefix}:{account.label}"
            keys += [base, base + ":leases"]
        return keys

    def _done(self, reservation_id: str) -> str:
        return f"{self.prefix}:done:{reservation_id}"

    def _now(self) -> str:
        return "" if self.clock is None else str(int(self.clock()))

    @staticmethod
    def _ttl(accounts: tuple[Account, ...]) -> int:
        """Keys live until their window ends plus a day (``statek budget show`` of yesterday)."""
        ends = [window_end(a.window) for a in accounts if a.window]
        if not ends:
            return 400 * 86_400
        return max(86_400, int((max(ends) - datetime.now(timezone.utc)).total_seconds()) + 86_400)

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except Exception as exc:
            raise StoreUnavailable(self.name, exc) from exc

    def _expired(self, count: Any) -> None:
        if count:
            count_store_event("lease_expiry", self.name, int(count))

    # ------------------------------------------------------------------ the protocol
    def reserve(self, accounts: tuple[Account, ...], claim: Claim) -> Grant | Refusal:
        """Check and hold ``claim`` in every account, atomically (one script, one round trip)."""
        args: list[Any] = [
            claim.reservation_id,
            self._now(),
            len(accounts),
            int(self.lease_seconds * 1000),
            _nano_up(claim.pico),
            claim.input_tokens,
            claim.output_tokens,
            -1 if claim.fixed_pico is None else claim.fixed_pico,
            -1 if claim.rate_pico is None else claim.rate_pico,
            claim.min_output,
            self._ttl(accounts),
        ]
        for account in accounts:
            args += [
                -1 if account.usd_pico is None else account.usd_pico // _NANO,
                -1 if account.tokens is None else account.tokens,
                -1 if account.calls is None else account.calls,
                -1 if account.approx_tokens is None else account.approx_tokens,
                1 if account.refuse_unpriced else 0,
            ]
        try:
            answer = self._call(self._reserve, self._keys(accounts), args)
        except StoreUnavailable:
            # The script may have run and only its reply been lost (a restart, a timeout): the call
            # is refused or goes unbudgeted, so drop the hold it may have left, once Redis answers.
            release = [claim.reservation_id, self._now(), len(accounts), 0, -1, 0, 0, 0, DONE_TTL_SECONDS]
            with self._lock:
                self._pending[claim.reservation_id] = (accounts, release)
                self._ensure_thread()
            raise
        if int(answer[0]) == 1:
            self._expired(answer[3])
            nano = int(answer[2])
            return Grant(int(answer[1]), None if nano < 0 else nano * _NANO)
        self._expired(answer[7])
        reason = answer[1].decode() if isinstance(answer[1], bytes) else str(answer[1])
        scale = _NANO if reason in ("usd", "unpriced") else 1
        needed = int(answer[6])
        return Refusal(
            reason,
            accounts[int(answer[2]) - 1],
            int(answer[3]) * scale,
            int(answer[4]) * scale,
            int(answer[5]) * scale,
            None if needed < 0 else needed * scale,
        )

    def hold(self, accounts: tuple[Account, ...], claim: Claim, grant: Grant) -> None:
        """Renew the lease until :meth:`settle` or :meth:`release` (a daemon thread per process)."""
        value = f"{_nano_up(grant.pico)} {claim.input_tokens + grant.output_tokens} {claim.input_tokens} {grant.output_tokens}"
        with self._lock:
            self._leases[claim.reservation_id] = (accounts, value)
            self._ensure_thread()

    def settle(
        self,
        accounts: tuple[Account, ...],
        claim: Claim,
        pico: int | None,
        tokens: int,
        wire_bytes: int,
        failed: bool,
    ) -> None:
        """Count what the call used, once (a retry of the same id is a no-op). A failure to reach
        Redis is counted and the settle retried by the renewal thread; never raises."""
        args = [claim.reservation_id, self._now(), len(accounts), 1, _nano_up(pico), tokens, wire_bytes]
        self._finish(accounts, claim, [*args, 1 if failed else 0, DONE_TTL_SECONDS])

    def release(self, accounts: tuple[Account, ...], claim: Claim) -> None:
        """Drop the reservation of a call never sent, counting nothing; never raises."""
        args = [claim.reservation_id, self._now(), len(accounts), 0, -1, 0, 0, 0, DONE_TTL_SECONDS]
        self._finish(accounts, claim, args)

    def _finish(self, accounts: tuple[Account, ...], claim: Claim, args: list[Any]) -> None:
        keys = [*self._keys(accounts), self._done(claim.reservation_id)]
        try:
            answer = self._call(self._settle, keys, args)
        except StoreUnavailable:
            count_store_event("error", self.name)
            with self._lock:  # keep the lease alive and retry until the spend lands
                self._pending[claim.reservation_id] = (accounts, args)
                self._ensure_thread()
            return
        self._expired(answer[1])
        with self._lock:
            self._leases.pop(claim.reservation_id, None)

    def status(self, account_name: str, window: str) -> dict[str, int]:
        """The account's counters in pico-USD and units (expired leases returned first)."""
        account = Account(account_name, window, None, None, None, None, False)
        keys = self._keys((account,))
        self._expired(self._call(self._expire, keys, ["", self._now(), 1])[1])
        try:
            raw = self.client.hgetall(keys[0])
        except Exception as exc:
            raise StoreUnavailable(self.name, exc) from exc
        fields = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        out = {k: int(v) for k, v in fields.items() if not k.startswith("r:")}
        for money in ("spent", "reserved", "limit"):
            nano = out.pop(f"{money}_nano", None)
            if nano is not None:
                out[f"{money}_pico"] = nano * _NANO if nano >= 0 else -1
        out["leases"] = sum(1 for k in fields if k.startswith("r:"))
        return out

    # ------------------------------------------------------------------ leases
    def _ensure_thread(self) -> None:
        """Start the renewal thread (again after a fork); call with ``_lock`` held."""
        if self._pid != os.getpid():  # a forked child: the parent's leases are not ours to renew
            self._pid, self._thread = os.getpid(), None
            self._leases.clear()
            self._pending.clear()
        if self._closed:
            return
        if self.renew_in_background and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._run, name="statek-budget-leases", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.lease_seconds / 3)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.renew_now()
            except Exception:  # noqa: BLE001 - the thread must survive anything
                _log.debug("statek budget lease renewal failed", exc_info=True)

    def renew_now(self) -> None:
        """Renew every lease of this process and retry pending settles, in one pipelined round trip."""
        with self._lock:
            leases = dict(self._leases)
            pending = dict(self._pending)
        if not leases and not pending:
            return
        lease_ms = int(self.lease_seconds * 1000)
        try:
            pipe = self.client.pipeline(transaction=False)
            order: list[tuple[str, str]] = []
            for rid, (accounts, args) in pending.items():
                self._settle(keys=[*self._keys(accounts), self._done(rid)], args=args, client=pipe)
                order.append(("settle", rid))
            for rid, (accounts, value) in leases.items():
                if rid in pending:
                    continue
                args = [rid, self._now(), len(accounts), lease_ms, value, self._ttl(accounts)]
                self._renew(keys=[*self._keys(accounts), self._done(rid)], args=args, client=pipe)
                order.append(("renew", rid))
            answers = pipe.execute(raise_on_error=False)
        except Exception:  # noqa: BLE001
            count_store_event("error", self.name)
            return
        for (kind, rid), answer in zip(order, answers):
            if isinstance(answer, Exception):
                count_store_event("error", self.name)
                continue
            self._expired(answer[1])
            if kind == "settle":
                with self._lock:
                    self._pending.pop(rid, None)
                    self._leases.pop(rid, None)
            elif int(answer[0]) == 0:  # settled elsewhere (a retried settle landed): stop renewing
                with self._lock:
                    self._leases.pop(rid, None)

    def live_leases(self) -> int:
        """Reservations of this process whose leases are being renewed (tests, ``budget show``)."""
        with self._lock:
            return len(self._leases)

    def close(self, timeout: float = 1.0) -> None:
        """Stop renewing: settle what is pending if Redis answers within ``timeout`` (what is left is
        dropped, and its leases expire), then end the renewal thread."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            self.renew_now()
            if self._pending:
                time.sleep(0.05)
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._leases.clear()
        self._wake.set()

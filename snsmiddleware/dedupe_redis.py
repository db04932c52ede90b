"""RedisDedupeStore: de-duplication shared by processes on several hosts (redis-py).

How each rule of the store contract maps onto Redis:

* claim is ``SET key held:<token> NX PX <lease>``: atomic, and the claim lapses by itself if
  its holder dies (a process killed between claim and commit does not block the MessageId:
  the redelivery after the lease runs);
* commit is ``SET key done PX <retention>``: done is done, whoever holds the key;
* release deletes the key only if it still holds *this* claim's token (a small Lua script, so
  the compare and the delete are one atomic step): a request whose lease lapsed never removes
  the claim of the request that took over;
* a claim whose holder is a dead process of this host (:func:`~.dedupe.holder_is_dead`) is
  taken over at once with the same compare-and-set, instead of waiting for its lease;
* an effect record (:class:`~.dedupe.EffectLedger`) is ``SET key|effect done PX <retention>``.

When Redis cannot be reached, claim raises and the middleware answers 503 (SNS retries):
processing without de-duplication could send an email twice. ``fail_open=True`` chooses the
other risk explicitly: claims then succeed (and are logged) while Redis is down.

redis-py is imported when the store is built: ``pip install snsmiddleware[redis]``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Final

from .dedupe import (
    DEFAULT_LEASE,
    DEFAULT_RETENTION,
    Claim,
    ClaimState,
    effect_key,
    holder_is_dead,
    new_token,
)
from .errors import ConfigurationError

log = logging.getLogger(__name__)

#: Socket time-outs: SNS waits ``SNS_ANSWER_DEADLINE`` (15 s) for the whole answer, and a
#: delivery makes a few store calls (claim, then commit or release): each must be far shorter.
DEFAULT_SOCKET_TIMEOUT: Final = timedelta(seconds=2)
_DONE: Final = b"done"
_RELEASE_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
_TAKE_OVER_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return false
"""


class RedisDedupeStore:
    """De-duplication in Redis, for processes on one or several hosts.

    :param redis: a ``redis://`` URL or a ready ``redis.Redis`` client.
    :param lease: how long an unfinished claim blocks redeliveries.
    :param retention: how long a processed id is remembered.
    :param key_prefix: namespace of the keys (several apps can share one Redis).
    :param fail_open: when Redis is unreachable, process anyway (logged) instead of 503.
    :param socket_timeout: connect and read time-out for a URL-built client.
    """

    def __init__(
        self,
        redis: str | Any,
        *,
        lease: timedelta = DEFAULT_LEASE,
        retention: timedelta = DEFAULT_RETENTION,
        key_prefix: str = "snsmiddleware:",
        fail_open: bool = False,
        socket_timeout: timedelta = DEFAULT_SOCKET_TIMEOUT,
    ) -> None:
        try:
            import redis as redis_py
        except ImportError:
            raise ConfigurationError(
                "the Redis store needs redis-py: pip install snsmiddleware[redis]"
            ) from None
        if isinstance(redis, str):
            seconds = socket_timeout.total_seconds()
            redis = redis_py.Redis.from_url(
                redis, socket_timeout=seconds, socket_connect_timeout=seconds
            )
        self._client = redis
        self._errors: tuple[type[Exception], ...] = (redis_py.RedisError, OSError)
        self._lease_ms = int(lease.total_seconds() * 1000)
        self._retention_ms = int(retention.total_seconds() * 1000)
        self._prefix = key_prefix
        self.fail_open = fail_open
        self._release = self._client.register_script(_RELEASE_SCRIPT)
        self._take_over = self._client.register_script(_TAKE_OVER_SCRIPT)

    def __repr__(self) -> str:
        return f"RedisDedupeStore({self._client!r}, fail_open={self.fail_open})"

    @property
    def retention(self) -> timedelta:
        """How long a processed id is remembered."""
        return timedelta(milliseconds=self._retention_ms)

    def _key(self, key: str) -> str:
        return self._prefix + key

    def claim(self, key: str) -> Claim:
        token = new_token()
        name = self._key(key)
        try:
            if self._client.set(name, f"held:{token}", nx=True, px=self._lease_ms):
                return Claim(key, ClaimState.CLAIMED, token)
            value = self._client.get(name)
            if value == _DONE:
                return Claim(key, ClaimState.DONE)
            held = value.decode("ascii", "replace") if isinstance(value, bytes) else ""
            if (
                held.startswith("held:")
                and holder_is_dead(held[len("held:") :])
                and self._take_over(keys=[name], args=[held, f"held:{token}", self._lease_ms])
            ):
                log.warning("took over the claim of a dead process message_id=%s", key)
                return Claim(key, ClaimState.CLAIMED, token)
        except self._errors:
            if not self.fail_open:
                raise
            log.warning("Redis unreachable: processing %s without de-duplication (fail_open)", key)
            return Claim(key, ClaimState.CLAIMED, token)
        # A key that lapsed between the two calls counts as held: SNS retries soon.
        return Claim(key, ClaimState.IN_PROGRESS)

    def commit(self, claim: Claim) -> None:
        self._client.set(self._key(claim.key), _DONE, px=self._retention_ms)

    def release(self, claim: Claim) -> None:
        self._release(keys=[self._key(claim.key)], args=[f"held:{claim.token}"])

    def record_effect(self, key: str, effect: str) -> None:
        self._client.set(self._key(effect_key(key, effect)), _DONE, px=self._retention_ms)

    def effect_recorded(self, key: str, effect: str) -> bool:
        return bool(self._client.get(self._key(effect_key(key, effect))) == _DONE)

    def ping(self) -> bool:
        """True when Redis answers (for start-up checks and health endpoints)."""
        try:
            return bool(self._client.ping())
        except self._errors:
            return False

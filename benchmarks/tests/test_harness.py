"""The harness's arithmetic, its wrk script and what each server of a run is given: what every
ratio it reports rests on."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from harness import backends, bench, cli, data, inprocess, report, servers, study, wrk
from harness.context import Context, Settings

from refapi import config as refapi_config


def test_summarise_counts_every_status_and_only_socket_failures_as_socket_errors():
    raw = {
        "duration_us": 2_000_000,
        "requests": 300,
        "statuses": {"200": 250, "404": 40, "503": 10},
        "errors": {"connect": 1, "read": 2, "write": 0, "timeout": 3, "status": 50},
        "latency_us": {"p50": 1500, "p99": 12000},
    }
    summary = wrk.summarise(raw)
    assert summary["requests_per_second"] == 150.0
    assert summary["statuses"] == {200: 250, 404: 40, 503: 10}
    assert summary["non_2xx"] == 50
    assert summary["socket_errors"] == 6  # wrk's own "status" errors are the non-2xx above
    assert summary["latency_ms"] == {"p50": 1.5, "p99": 12.0}


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200, or the status a path asks for (/status/404), and keeps what it was sent."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the servers under test
    seen: ClassVar[list[tuple[str, str, str, str]]] = []
    forwarded: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        self.seen.append((self.command, self.path, self.headers.get("X-API-Key", ""), body))
        self.forwarded.append(
            (self.headers.get("X-Forwarded-For", ""), self.headers.get("X-Forwarded-Proto", ""))
        )
        status = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/status/") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    _Recorder.forwarded = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def wrk_installed() -> None:
    # As the suite does with PostgreSQL and Redis: skipped with its reason on a machine without
    # wrk, a failure under CI (`.ci/run` installs it).
    if not shutil.which("wrk"):
        reason = "wrk is not installed: apt-get install wrk (or run benchmarks/run once)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def test_wrk_sends_each_line_of_the_requests_file_with_its_body_and_headers(
    recorder, wrk_installed, tmp_path
):
    bodies = [json.dumps({"key": f"k{number}", "value": number}) for number in range(3)]
    requests = data.write_requests(tmp_path / "requests.txt", ["/save"] * 3, bodies)
    load = wrk.Load("POST", requests, ("X-API-Key: secret", "Content-Type: application/json"))
    result = wrk.run(load, url=recorder, duration=1, connections=2, threads=1, timeout=2)
    assert result["requests"] >= 3
    assert result["statuses"] == {200: result["requests"]}
    assert result["non_2xx"] == 0
    seen = _Recorder.seen
    assert {method for method, *_ in seen} == {"POST"}
    assert {key for _, _, key, _ in seen} == {"secret"}
    assert {body for *_, body in seen} == set(bodies)  # every line, not only the first


def test_wrk_counts_each_status_it_was_answered(recorder, wrk_installed, tmp_path):
    requests = data.write_requests(tmp_path / "requests.txt", ["/status/200", "/status/404"])
    result = wrk.run(
        wrk.Load("GET", requests), url=recorder, duration=1, connections=1, threads=1, timeout=2
    )
    assert set(result["statuses"]) == {200, 404}
    assert sum(result["statuses"].values()) == result["requests"]
    assert result["non_2xx"] == result["statuses"][404]
    # One connection walks the list in order: the two statuses alternate.
    assert abs(result["statuses"][200] - result["statuses"][404]) <= 1


def test_a_requests_file_refuses_a_target_that_would_split_its_line(tmp_path):
    with pytest.raises(ValueError, match="tab or a newline"):
        data.write_requests(tmp_path / "requests.txt", ["/get/a\tb"])


def test_save_bodies_are_the_same_in_every_run_and_distinct_keys():
    bodies = data.save_bodies(50)
    assert bodies == data.save_bodies(50)
    assert len({json.loads(body)["key"] for body in bodies}) == 50


def _server(*worker_pids: int) -> Any:
    return SimpleNamespace(
        process=SimpleNamespace(pid=1),
        workers=lambda: [SimpleNamespace(pid=pid) for pid in worker_pids],
    )


def test_busiest_share_is_the_busiest_workers_part_of_the_workers_cpu_time():
    before = {1: 5.0, 2: 1.0, 3: 1.0}
    after = {1: 9.0, 2: 4.0, 3: 2.0}  # the master's seconds are not a worker's
    assert servers._busiest_share(_server(2, 3), before, after) == pytest.approx(0.75)
    assert servers._busiest_share(_server(2), before, after) is None  # one worker: no share
    assert servers._busiest_share(_server(2, 3), before, before) is None  # nothing measured


class _FakeWrk:
    """wrk for bench.measure: each load answers 100 requests; the loads are counted, and the
    request targets of each are kept."""

    def __init__(self) -> None:
        self.loads = 0
        self.targets: list[set[str]] = []

    def run(self, load: wrk.Load, *, duration: float, **options: Any) -> dict[str, Any]:
        self.loads += 1
        lines = load.requests_file.read_text(encoding="utf-8").splitlines()
        self.targets.append({line.partition("\t")[0] for line in lines})
        return {"requests": 100, "statuses": {200: 100}}


class _FakeCpuMeter:
    """servers.measuring_cpu for bench.measure: the busiest worker's share of each load in turn."""

    def __init__(self, fake_wrk: _FakeWrk, shares: list[float | None]) -> None:
        self.fake_wrk = fake_wrk
        self.shares = shares
        self.found: dict[str, Any] = {}

    def __enter__(self) -> dict[str, Any]:
        self.found = {}
        return self.found

    def __exit__(self, *exc: Any) -> None:
        share = self.shares[self.fake_wrk.loads - 1]
        self.found.update({"server": 0.01, "busiest worker": share})


@pytest.mark.parametrize(
    ("shares", "balanced", "loads", "share"),
    [
        ([0.52], True, 1, 0.52),  # fair: measured once
        ([0.98, 0.55], True, 2, 0.55),  # one worker did it all: measured again
        ([0.9, 0.9, 0.9, 0.5], True, 3, 0.9),  # at most BALANCE_ATTEMPTS loads, then kept
        ([0.98], False, 1, 0.98),  # the study's few connections cannot be spread
        ([None], True, 1, None),  # one worker
    ],
)
def test_measure_loads_again_while_one_worker_did_most_of_the_work(
    monkeypatch, tmp_path, shares, balanced, loads, share
):
    fake_wrk = _FakeWrk()
    meter = _FakeCpuMeter(fake_wrk, shares)
    monkeypatch.setattr(bench.wrk, "run", fake_wrk.run)
    monkeypatch.setattr(bench.servers, "measuring_cpu", lambda server: meter)
    peaks = {4: 64 * bench.MIB}
    monkeypatch.setattr(bench.servers, "sampling_rss", lambda server: contextlib.nullcontext(peaks))
    ctx = SimpleNamespace(
        settings=SimpleNamespace(connections=32, wrk_threads=1, timeout=5, warmup=0, duration=1),
        workdir=tmp_path,
        auth_header={"X-API-Key": "secret"},
    )
    endpoint = bench.Endpoint("ping", "GET /ping", "GET", ("/ping",), frozenset({200}))
    server = SimpleNamespace(url="http://127.0.0.1:1")
    result = bench.measure(server, ctx, endpoint, tag="t", balanced=balanced)
    assert fake_wrk.loads == loads
    assert result["attempts"] == loads
    assert result["busiest_worker_cpu_share"] == share
    assert result["cpu_us_per_request"] == {"server": 100.0}
    assert result["peak_rss_mib_per_worker"] == [64.0]
    assert result["unexpected"] == 0


def _context(settings: Settings, tmp_path: Path) -> Any:
    """A run's Context without its stub upstream's server."""
    return Context(
        project_root=tmp_path,
        workdir=tmp_path,
        settings=settings,
        upstream=SimpleNamespace(url="http://127.0.0.1:1", delay=0.0, requests=0),
        database_url=backends.DEFAULT_DATABASE_URL,
        redis_url=backends.DEFAULT_REDIS_URL,
    )


def _fake_server(name: str, **options: Any) -> Any:
    """servers.gunicorn and servers.uvicorn without the process: nothing listens."""
    return SimpleNamespace(name=name, url="http://127.0.0.1:1", stop=lambda: None)


def _fake_measure(*args: Any, **options: Any) -> dict[str, Any]:
    return {
        "requests_per_second": 1.0,
        "latency_ms": {"p99": 1.0},
        "socket_errors": 0,
        "unexpected": 0,
    }


@pytest.mark.parametrize(("quick", "loads_ping"), [(False, True), (True, False)])
def test_a_quick_run_skips_the_peers_own_ping_and_a_full_run_loads_it(
    monkeypatch, tmp_path, quick, loads_ping
):
    fake_wrk = _FakeWrk()
    monkeypatch.setattr(bench.wrk, "run", fake_wrk.run)
    monkeypatch.setattr(
        bench.servers,
        "measuring_cpu",
        lambda server: contextlib.nullcontext({"busiest worker": None}),
    )
    monkeypatch.setattr(bench.servers, "sampling_rss", lambda server: contextlib.nullcontext({}))
    monkeypatch.setattr(bench.servers, "uvicorn", _fake_server)
    monkeypatch.setattr(bench, "probe", lambda server, ctx, endpoint, forwarded: None)
    ctx = _context(_settings(quick=quick, hot_keys=3), tmp_path)
    ctx.files["peer_db"] = tmp_path / "peer.sqlite3"
    peer = bench.peer(ctx, backends.configuration_a(tmp_path, threads=4))
    assert peer["available"] is True
    reads = {"/get/" + data.path_of(data.store_key(number)) for number in range(3)}
    assert ("ping" in peer) is loads_ping
    # The read is loaded either way; the peer's /ping, only in a full run.
    assert fake_wrk.targets == ([reads, {"/ping"}] if loads_ping else [reads])
    if loads_ping:
        assert peer["ping"]["requests"] == 100


def test_configuration_b_is_served_as_compose_yaml_serves_refapi():
    # The worker class, the pools and the proxy hops the benchmark's B runs with are
    # compose.yaml's defaults: the numbers are production's configuration, ProxyFix included.
    compose = (Path(__file__).resolve().parents[2] / "compose.yaml").read_text()
    defaults = dict(re.findall(r"(REFAPI_[A-Z_]+): \$\{REFAPI_[A-Z_]+:-([^}]*)\}", compose))
    assert defaults["REFAPI_WORKER_CLASS"] == backends.B_WORKER_CLASS
    assert defaults["REFAPI_DATABASE_POOL_SIZE"] == str(backends.B_POOL_SIZE)
    assert defaults["REFAPI_DATABASE_POOL_OVERFLOW"] == str(backends.B_POOL_OVERFLOW)
    for name, value in backends.B_PROXY_SETTINGS.items():
        assert defaults[name] == value
    assert int(backends.B_PROXY_SETTINGS["REFAPI_PROXY_X_FOR"]) >= 1  # ProxyFix is in the stack


def test_every_request_of_a_load_behind_the_proxy_carries_the_proxys_headers(
    monkeypatch, recorder, wrk_installed, tmp_path
):
    monkeypatch.setattr(
        bench.servers,
        "measuring_cpu",
        lambda server: contextlib.nullcontext({"busiest worker": None}),
    )
    monkeypatch.setattr(bench.servers, "sampling_rss", lambda server: contextlib.nullcontext({}))
    ctx = SimpleNamespace(
        settings=SimpleNamespace(connections=2, wrk_threads=1, timeout=2, warmup=0, duration=1),
        workdir=tmp_path,
        auth_header={"X-API-Key": "secret"},
    )
    endpoint = bench.Endpoint("get-hit", "GET /get", "GET", ("/get/a", "/get/b"), frozenset({200}))
    server = SimpleNamespace(url=recorder)
    result = bench.measure(
        server, ctx, endpoint, tag="b", balanced=False, forwarded=backends.B_FORWARDED_HEADERS
    )
    assert result["requests"] >= 2
    expected = (
        backends.B_FORWARDED_HEADERS["X-Forwarded-For"],
        backends.B_FORWARDED_HEADERS["X-Forwarded-Proto"],
    )
    assert set(_Recorder.forwarded) == {expected}
    assert {key for _, _, key, _ in _Recorder.seen} == {"secret"}
    # Without a proxy (configuration A, the study) the requests carry none.
    _Recorder.forwarded.clear()
    bench.measure(server, ctx, endpoint, tag="a", balanced=False)
    assert set(_Recorder.forwarded) == {("", "")}


def _config(ratios: dict[str, float], *, peer_rps: float, drift: float = 0.0) -> dict[str, Any]:
    ceiling = 1000.0
    endpoints = [
        {
            "name": name,
            "available": True,
            "ratio_to_bare_ping": ratio,
            "requests_per_second": ratio * ceiling,
            "unexpected": 0,
            "socket_errors": 0,
        }
        for name, ratio in ratios.items()
    ]
    return {
        "endpoints": endpoints,
        "peer": {"available": True, "requests_per_second": peer_rps},
        "ceiling": {"drift": drift},
    }


def test_goals_read_the_issues_targets_off_the_ratios():
    config = _config(
        {"ping": 0.92, "get-hit": 0.8, "get-miss": 0.29, "zipcode": 0.76, "indices": 0.6},
        peer_rps=900.0,
    )
    rows = {row["goal"]: row for row in report.goals({"configurations": {"B": config}})}
    assert rows["[B] full-stack /ping"]["met"] is True
    assert rows["[B] GET /get cache hit"]["met"] is True
    assert rows["[B] GET /get cache miss"]["met"] is False  # 0.29 < 0.3
    assert rows["[B] GET /get cache hit vs the FastAPI peer"]["measured"] == pytest.approx(0.889)
    assert rows["[B] GET /get cache hit vs the FastAPI peer"]["met"] is False
    zipcode = rows["[B] GET /zipcodes/<zipcode> at the level of the cached GET /get"]
    assert zipcode["measured"] == pytest.approx(0.95)
    assert zipcode["met"] is True
    index = rows["[B] GET /indices/health?base_year=2013 at the level of the cached GET /get"]
    assert index["met"] is False  # 0.6 / 0.8
    assert rows["[B] zero errors, zero unexpected statuses"]["met"] is True
    assert not any("noisy" in row for row in rows.values())


def test_goals_unmeasured_when_an_endpoint_is_missing_and_noisy_when_the_ceiling_moved():
    config = _config({"ping": 0.95}, peer_rps=900.0, drift=0.3)
    config["endpoints"][0]["unexpected"] = 2
    rows = {row["goal"]: row for row in report.goals({"configurations": {"A": config}})}
    assert rows["[A] GET /get cache hit"]["met"] is None
    assert rows["[A] GET /get cache hit vs the FastAPI peer"]["met"] is None
    assert rows["[A] full-stack /ping"]["noisy"] == "ceiling drift 30%"
    errors = rows["[A] zero errors, zero unexpected statuses"]
    assert errors["measured"] == 2
    assert errors["met"] is False


def test_in_process_calls_post_the_same_body_every_time():
    received: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        received.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b""]

    environ = inprocess._environ("/save", True)
    for _ in range(3):
        assert inprocess._call(app, environ) == "200 OK"
    assert len(received) == 3
    assert received[0]
    assert len(set(received)) == 1
    assert json.loads(received[0]) == json.loads(data.save_bodies(1)[0])
    assert isinstance(environ["wsgi.input"], io.BytesIO)


def test_the_endpoint_names_are_the_endpoints_the_benchmark_loads(tmp_path):
    ctx = SimpleNamespace(settings=SimpleNamespace(hot_keys=3))
    names = [endpoint.name for endpoint in bench.refapi_endpoints(ctx, [1000])]
    assert tuple(names) == bench.ENDPOINT_NAMES
    assert Path(wrk.LUA_SCRIPT).is_file()


def _load(rps: float) -> dict[str, Any]:
    """One load's entry, as bench.measure returns it."""
    return {
        "available": True,
        "requests_per_second": rps,
        "latency_ms": {"p50": 1.0, "p99": 2.0},
        "statuses": {"200": int(rps * 10)},
        "socket_errors": 0,
        "non_2xx": 0,
        "unexpected": 0,
    }


def _results(*, peer_ping: float | None, drift: float = 0.0) -> dict[str, Any]:
    peer = {**_load(1100.0), "ratio_to_bare_ping": 1.1}
    if peer_ping is not None:
        peer["ping"] = {**_load(peer_ping), "ratio_to_bare_ping": peer_ping / 1000}
    config = {
        "description": "test",
        "ceiling": {
            "before": _load(1000.0),
            "after": _load(1000.0),
            "requests_per_second": 1000.0,
            "drift": drift,
        },
        "endpoints": [],
        "peer": peer,
    }
    meta = {
        "started_at": "now",
        "commit": "0" * 40,
        "branch": "main",
        "dirty": False,
        "cpus": 2,
        "python": "3",
        "wrk": "wrk",
        "load_average_before": 0.0,
    }
    settings = {"connections": 32, "wrk_threads": 1, "warmup": 1, "duration": 1}
    results = {"meta": meta, "settings": settings, "configurations": {"B": config}}
    results["goals"] = report.goals(results)
    return results


def test_the_report_sets_the_two_stacks_ceilings_side_by_side():
    text = report.markdown(_results(peer_ping=1250.0))
    assert "| FastAPI peer: GET /ping (its stack, no work) | 1,250 | 1.25 |" in text
    assert (
        "The two stacks side by side, in B: the bare Flask /ping under gunicorn ran at 0.800 x "
        "the FastAPI peer's own /ping under uvicorn, and the peer's SQLite read at 1.100 x the "
        "bare Flask /ping." in text
    )
    assert "Unreliable" not in text
    noisy = report.markdown(_results(peer_ping=1250.0, drift=0.3))
    assert "(Unreliable: the ceiling moved during these loads.) The two stacks" in noisy
    # A run without the peer's /ping (an earlier benchmark.json) says nothing of it.
    assert "FastAPI peer: GET /ping" not in report.markdown(_results(peer_ping=None))


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "duration": 1.0,
        "warmup": 0.0,
        "connections": 32,
        "wrk_threads": 1,
        "timeout": 5.0,
        "threads": 4,
        "workers_b": 2,
        "hot_keys": 10,
        "quick": False,
    }
    return Settings(**{**values, **overrides})


def test_another_worker_class_is_passed_to_gunicorn_and_marks_the_run_as_not_the_record():
    own = _settings()
    assert own.worker_args == ()
    assert cli.smoke_reason(SimpleNamespace(settings=own), {"configurations": {}}, "") is None
    gevent = _settings(worker_class="gevent")
    assert gevent.worker_args == ("--worker-class", "gevent")
    reason = cli.smoke_reason(SimpleNamespace(settings=gevent), {"configurations": {}}, "")
    assert reason == "gunicorn's gevent workers, not refapi's own"


class _FakeServices:
    """PostgreSQL and Redis as configuration B's setup and cleanup use them, without either."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __enter__(self) -> _FakeServices:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def execute(self, statement: str) -> None:
        self.statements.append(statement)

    def ping(self) -> bool:
        return True

    def scan_iter(self, **options: Any) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        pass


@pytest.fixture
def fake_services(monkeypatch) -> _FakeServices:
    services = _FakeServices()

    def connect(url: str, **options: Any) -> _FakeServices:
        return services

    monkeypatch.setattr(backends, "psycopg", SimpleNamespace(connect=connect, Error=OSError))
    redis_client = SimpleNamespace(from_url=connect)
    monkeypatch.setattr(backends, "redis", SimpleNamespace(Redis=redis_client, RedisError=OSError))
    return services


def _worker_class_served(env: dict[str, str], extra_args: tuple[str, ...] = ()) -> str:
    """The worker class gunicorn runs refapi with: `--worker-class` on its command line, else
    gunicorn.conf.py's, which is REFAPI_WORKER_CLASS's or refapi's default."""
    if "--worker-class" in extra_args:
        return extra_args[extra_args.index("--worker-class") + 1]
    given = {name: value for name, value in env.items() if name == "REFAPI_WORKER_CLASS"}
    settings = {**refapi_config.defaults(), **refapi_config.from_environment(given)}
    return settings["WORKER_CLASS"]


@pytest.mark.parametrize(
    ("argv", "b_worker_class"),
    [
        ([], "gevent"),  # the default: compose.yaml's
        (["--b-worker-class", "gthread"], "gthread"),
        (["--b-worker-class", "gevent"], "gevent"),
    ],
)
def test_b_worker_class_option_reaches_configuration_b_and_a_always_runs_gthread(
    monkeypatch, fake_services, tmp_path, argv, b_worker_class
):
    monkeypatch.setenv("REFAPI_WORKER_CLASS", "gevent")  # the shell's: no server of a run sees it
    ctx = _context(cli.make_settings(cli.parse(argv)), tmp_path)
    configuration_b = cli.make_backend(ctx, "B")
    assert _worker_class_served(ctx.env(**configuration_b.env)) == b_worker_class
    configuration_a = cli.make_backend(ctx, "A")
    assert _worker_class_served(ctx.env(**configuration_a.env)) == "gthread"


@pytest.mark.parametrize("b_worker_class", ["gevent", "gthread"])
def test_every_study_model_serves_refapi_with_its_own_worker_class_whatever_bs_is(
    monkeypatch, fake_services, tmp_path, b_worker_class
):
    worker_classes: dict[str, str] = {}
    threads: dict[str, str] = {}

    def gunicorn(
        name: str, *, env: dict[str, str], extra_args: tuple[str, ...], **options: Any
    ) -> Any:
        worker_classes[name] = _worker_class_served(env, tuple(extra_args))
        threads[name] = env["REFAPI_THREADS"]
        return _fake_server(name)

    monkeypatch.setattr(study.servers, "gunicorn", gunicorn)
    monkeypatch.setattr(study.servers, "uvicorn", _fake_server)
    monkeypatch.setattr(study.backends, "seed", lambda **options: {"migrate": {"status": "ok"}})
    monkeypatch.setattr(study.bench, "probe", lambda server, ctx, endpoint: None)
    monkeypatch.setattr(study.bench, "measure", _fake_measure)
    ctx = _context(_settings(b_worker_class=b_worker_class), tmp_path)
    ctx.files.update(store=tmp_path / "store.jsonl", peer_db=tmp_path / "peer.sqlite3")
    phases = [phase.name for phase in study.PHASES]
    study.run(ctx, {}, "B", [1], [4, 32], phases, log=lambda message: None)
    # Every phase under each model, gevent's included, and each server runs its model's class.
    served = {"sync": "sync", "gthread4": "gthread", "gthread32": "gthread", "gevent": "gevent"}
    assert worker_classes == {
        f"study-{model}-{phase}": worker_class
        for model, worker_class in served.items()
        for phase in phases
    }
    for phase in phases:
        assert threads[f"study-gthread4-{phase}"] == "4"
        assert threads[f"study-gthread32-{phase}"] == "32"


class _Stacks:
    """servers.gunicorn and servers.uvicorn for head_to_head: nothing listens, starts and stops
    are recorded, and a probe of a named server can be made to fail."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.failing: set[str] = set()

    def server(self, name: str, **options: Any) -> Any:
        self.started.append(name)
        return SimpleNamespace(
            name=name, url=f"http://{name}", stop=lambda: self.stopped.append(name)
        )

    def probe(self, server: Any, ctx: Any, endpoint: Any, forwarded: Any) -> str | None:
        return "probe answered 404" if server.name in self.failing else None


def _head_to_head(monkeypatch, tmp_path, rps, names=("ping", "get-hit", "zipcode", "indices")):
    """bench.head_to_head with fake servers; ``rps(load_number, endpoint, server)`` answers."""
    stacks = _Stacks()
    monkeypatch.setattr(bench.servers, "gunicorn", stacks.server)
    monkeypatch.setattr(bench.servers, "uvicorn", stacks.server)
    monkeypatch.setattr(bench, "probe", stacks.probe)
    loads: list[tuple[str, str, float]] = []

    def fake_measure(server, ctx, endpoint, *, tag, duration, warmup, forwarded):
        assert forwarded == backends.B_FORWARDED_HEADERS  # every load as behind compose's proxy
        assert duration == 5.0  # half the measured duration
        loads.append((endpoint.name, server.name, warmup))
        value = rps(len(loads) - 1, endpoint.name, server.name)
        return {"requests_per_second": value, "unexpected": 0, "socket_errors": 0, "attempts": 1}

    monkeypatch.setattr(bench, "measure", fake_measure)
    ctx = _context(_settings(duration=10.0, warmup=2.0), tmp_path)
    ctx.files["peer_db"] = tmp_path / "peer.sqlite3"
    backend = backends.Backend("B", "test", {}, workers=2, threads=4)
    backend.forwarded = dict(backends.B_FORWARDED_HEADERS)
    refapi = SimpleNamespace(name="refapi-B", url="http://refapi")
    endpoints = {e.name: e for e in bench.refapi_endpoints(ctx, [1000]) if e.name in names}
    return stacks, loads, lambda: bench.head_to_head(ctx, backend, refapi, endpoints, print)


SPEED = {"bare-ping": 1000, "ping": 900, "get-hit": 800, "zipcode": 760, "indices": 840}
SPEED.update({"peer-get": 700, "get-miss": 300})


def test_head_to_head_loads_each_pair_back_to_back_and_the_first_side_alternates(
    monkeypatch, tmp_path
):
    # The machine slows down by a tenth with every load: a pair loaded in the same order every
    # round would always favour its first side.
    stacks, loads, run = _head_to_head(
        monkeypatch,
        tmp_path,
        lambda number, name, server: SPEED[name] * 0.9**number,
        names=("ping", "get-hit", "get-miss", "zipcode", "indices"),
    )
    result = run()
    assert len(result["rounds"]) == bench.HEAD_TO_HEAD_ROUNDS == 5
    assert len(loads) == 5 * 6 * 2  # each of the six pairs' two sides, in each round
    pairs = [(loads[n][0], loads[n + 1][0]) for n in range(0, len(loads), 2)]
    assert pairs[:6] == [
        ("ping", "bare-ping"),
        ("get-hit", "peer-get"),
        ("zipcode", "get-hit"),
        ("indices", "get-hit"),
        ("get-hit", "bare-ping"),
        ("get-miss", "bare-ping"),
    ]
    # Round 2: the pairs rotated, each the other way round; round 3: rotated again, ours first.
    assert pairs[6:12] == [
        ("peer-get", "get-hit"),
        ("get-hit", "zipcode"),
        ("get-hit", "indices"),
        ("bare-ping", "get-hit"),
        ("bare-ping", "get-miss"),
        ("bare-ping", "ping"),
    ]
    assert pairs[12][0] == "zipcode"
    assert [warmup for _, _, warmup in loads] == [2.0] * 12 + [0] * 48  # warmed up once
    assert {
        server
        for name, server, _ in loads
        if name in SPEED and name not in ("bare-ping", "peer-get")
    } == {"refapi-B"}
    ping = [entry["ping"]["ratio"] for entry in result["rounds"]]
    # 0.9 / 0.9 when refapi's /ping went first (the machine a tenth faster for it), 0.9 x 0.9
    # when second: neither side always gets the faster machine.
    assert ping == [1.0, 0.81, 1.0, 0.81, 1.0]
    assert [entry["ping"]["first"] for entry in result["rounds"]] == ["ours", "theirs"] * 2 + [
        "ours"
    ]
    assert result["ping_ratio"]["rounds"] == 5
    # The miss against the bare /ping: 0.3 / 0.9 (ours first, the machine a tenth faster for it)
    # and 0.3 x 0.9 in round 2.
    assert [entry["miss"]["ratio"] for entry in result["rounds"]] == [0.333, 0.27] * 2 + [0.333]
    assert result["miss_ratio"] == {"median": 0.333, "min": 0.27, "max": 0.333, "rounds": 5}
    # Every server the rounds started is stopped; the peer and the bare app were both needed.
    assert sorted(stacks.started) == sorted(stacks.stopped)
    assert len(stacks.started) == 2


def test_the_goals_read_the_median_of_the_rounds_and_say_when_they_straddle_the_target(
    monkeypatch, tmp_path
):
    def rps(number, name, server):
        value = float(SPEED[name])
        round_number = number // 10  # five pairs of two loads a round
        if round_number == 1 and name == "peer-get":
            value *= 1.5  # one lucky load of the peer's
        return value

    _, _, run = _head_to_head(monkeypatch, tmp_path, rps)
    result = run()
    assert result["peer_ratio"] == {"median": 1.143, "min": 0.762, "max": 1.143, "rounds": 5}
    assert result["zipcode_ratio"]["median"] == 0.95
    config = _config(
        {"ping": 0.7, "get-hit": 0.5, "get-miss": 0.35, "zipcode": 0.5}, peer_rps=900.0, drift=0.3
    )
    config["head_to_head"] = result
    rows = {row["goal"]: row for row in report.goals({"configurations": {"B": config}})}
    ping = rows["[B] full-stack /ping"]
    hit = rows["[B] GET /get cache hit"]
    peer = rows["[B] GET /get cache hit vs the FastAPI peer"]
    zipcode = rows["[B] GET /zipcodes/<zipcode> at the level of the cached GET /get"]
    # The rounds, not the single loads a minute apart (0.7, 0.8 / 0.9, 0.5 / 0.8 here).
    assert (ping["measured"], ping["met"]) == (0.9, True)
    assert (peer["measured"], peer["met"]) == (1.143, True)
    assert (zipcode["measured"], zipcode["met"]) == (0.95, True)
    assert (hit["measured"], hit["met"]) == (0.8, True)  # 800 / 1000 in every round, not 0.5
    assert peer["basis"] == "median of 5 interleaved rounds, 0.76 to 1.14"
    # Rounds on both sides of the target make the verdict unreliable; the ceiling's drift
    # concerns only the goals read off single loads.
    assert peer["noisy"] == "its rounds fall on both sides of the target"
    assert "noisy" not in ping
    # The miss was not in these rounds: its single load counts, with the ceiling's drift.
    miss = rows["[B] GET /get cache miss"]
    assert (miss["measured"], miss["noisy"]) == (0.35, "ceiling drift 30%")
    assert "basis" not in miss
    text = report.markdown(
        {
            **_results(peer_ping=None),
            "configurations": {
                "B": {**_results(peer_ping=None)["configurations"]["B"], "head_to_head": result}
            },
        }
    )
    assert (
        "| 2 | GET /get/<key> (cache hit) | 800 | FastAPI peer GET /get/<key> | 1,050 | 0.762 "
        "| FastAPI peer GET /get/<key> |" in text
    )


def test_a_pair_whose_other_side_does_not_answer_is_left_out_and_its_server_stopped(
    monkeypatch, tmp_path
):
    stacks, loads, run = _head_to_head(
        monkeypatch, tmp_path, lambda number, name, server: float(SPEED[name])
    )
    stacks.failing.add("peer-B")
    result = run()
    assert result["skipped"] == {"peer": "peer-get unavailable: probe answered 404"}
    assert "peer_ratio" not in result
    assert "peer-get" not in {name for name, _, _ in loads}
    assert result["ping_ratio"]["median"] == 0.9  # the other pairs are measured as always
    assert sorted(stacks.started) == sorted(stacks.stopped)
    config = _config({"ping": 0.95, "get-hit": 0.8}, peer_rps=900.0)
    config["peer"] = {"available": False, "reason": "probe answered 404"}
    config["head_to_head"] = result
    rows = {row["goal"]: row for row in report.goals({"configurations": {"B": config}})}
    assert rows["[B] GET /get cache hit vs the FastAPI peer"]["met"] is None


def test_only_the_servers_a_pair_needs_are_started(monkeypatch, tmp_path):
    stacks, loads, run = _head_to_head(
        monkeypatch, tmp_path, lambda number, name, server: float(SPEED[name]), names=("ping",)
    )
    result = run()
    assert stacks.started == ["bare-flask-B-head-to-head"]
    assert set(result) >= {"ping_ratio"}
    assert {name for name, _, _ in loads} == {"ping", "bare-ping"}


def test_an_error_in_a_head_to_head_round_counts_against_the_zero_errors_goal():
    config = _config({"ping": 0.95, "get-hit": 0.8}, peer_rps=900.0)
    load = {"requests_per_second": 1.0, "unexpected": 0, "socket_errors": 0}
    pair = {"ours": {**load, "socket_errors": 3}, "theirs": {**load, "unexpected": 5}}
    config["head_to_head"] = {
        "available": True,
        "duration": 5.0,
        "rounds": [{"ping": {**pair, "first": "ours", "ratio": 1.0}}],
        "ping_ratio": {"median": 1.0, "min": 1.0, "max": 1.0, "rounds": 1},
    }
    rows = {row["goal"]: row for row in report.goals({"configurations": {"B": config}})}
    # refapi's 3 socket errors count; the bare app's statuses are not refapi's.
    assert rows["[B] zero errors, zero unexpected statuses"]["measured"] == 3


def test_a_pair_whose_other_side_was_not_loaded_in_this_run_is_left_out_and_said_so(
    monkeypatch, tmp_path
):
    # `--endpoints zipcode`: the zipcode lookup is set against a cached read the run never loaded.
    stacks, loads, run = _head_to_head(
        monkeypatch, tmp_path, lambda number, name, server: float(SPEED[name]), names=("zipcode",)
    )
    result = run()
    assert result["skipped"] == {
        "zipcode": "get-hit unavailable: not loaded in this run (--endpoints)"
    }
    assert result["rounds"] == [{}] * 5
    assert loads == []
    assert stacks.started == []

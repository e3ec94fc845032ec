"""Ctrl-C and `kill` stop Pilah even where Python swallows the KeyboardInterrupt a signal raises (JAX's
garbage-collection callback: `pilah.interrupts`)."""

import subprocess
import sys
import textwrap

STOPPED_INSIDE_A_GC_CALLBACK = """
    import contextlib, gc, os, signal, sys
    from pilah import interrupts

    interrupts.install()
    fired = []

    def collecting(phase, info):  # as JAX's callback: Python prints what is raised in here and goes on
        if phase == "start" and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.{signal})
            for _ in range(100_000):  # the handler runs in here
                pass

    gc.callbacks.append(collecting)
    try:
        with {context}:
            gc.collect()
            print("went on", flush=True)
        interrupts.raise_if_requested()
    except KeyboardInterrupt:
        sys.exit(130)
"""


def run(signal: str, held: bool) -> subprocess.CompletedProcess:
    context = "interrupts.raised_at_safe_points()" if held else "contextlib.nullcontext()"  # as `fit` does, or not
    script = textwrap.dedent(STOPPED_INSIDE_A_GC_CALLBACK).format(signal=signal, context=context)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_a_stop_swallowed_where_it_was_raised_is_raised_again_at_the_next_safe_point():
    for signal in ("SIGTERM", "SIGINT"):
        result = run(signal, held=False)
        assert "KeyboardInterrupt" in result.stderr  # raised inside the callback, and only printed there...
        assert result.stdout == "went on\n" and result.returncode == 130, result.stderr  # ...but not lost


def test_during_training_a_stop_is_only_recorded_until_a_safe_point():
    result = run("SIGTERM", held=True)
    assert "KeyboardInterrupt" not in result.stderr  # nothing raised in the middle of the library's work
    assert result.stdout == "went on\n" and result.returncode == 130, result.stderr

"""Test-only: a real slowdown of one stage, for tests/test_check_run.py (never part of the package).

On PYTHONPATH, Python imports this at start-up in every process (the CPU pool's workers too). With
MIXEDCLF_TEST_SLOWDOWN="preprocess:1.5" the preprocess stage does its work, then the same work again on half of
its texts; with "device:1.5" every model forward is followed by a forward over half of its rows. The extra work is
real computation, as slower code would do: the run's results are the first call's.
"""

import os

_SPEC = os.environ.get("MIXEDCLF_TEST_SLOWDOWN")


def _install(stage: str, factor: float) -> None:
    extra = factor - 1.0
    if stage == "preprocess":
        import mixedclf.core.preprocess as pre

        original = pre.preprocess_texts

        def slow_preprocess(texts, *args, **kwargs):
            out = original(texts, *args, **kwargs)
            n = round(len(texts) * extra)
            if n:
                original(texts[:n], *args, **kwargs)
            return out

        pre.preprocess_texts = slow_preprocess
    elif stage == "device":
        import mixedclf.models.backend as backend

        load = backend.load_model

        def load_slow_model(*args, **kwargs):
            loaded = load(*args, **kwargs)  # a LoadedModel: the torch module runs the forward
            module = loaded.module
            forward = module.forward

            def slow_forward(*f_args, **f_kwargs):
                out = forward(*f_args, **f_kwargs)
                ids = f_kwargs["input_ids"]
                n = round(ids.shape[0] * extra)
                if n:
                    forward(**{k: v[:n] for k, v in f_kwargs.items()})
                return out

            module.forward = slow_forward
            return loaded

        backend.load_model = load_slow_model
    else:
        raise SystemExit(f"MIXEDCLF_TEST_SLOWDOWN: unknown stage {stage!r}")


if _SPEC:
    _stage, _, _factor = _SPEC.partition(":")
    _install(_stage, float(_factor or 1.5))

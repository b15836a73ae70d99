"""Shared fixtures: WordNet (Debian's wordnet-base) and the packaged MiniLM model, loaded once."""

import numpy as np
import pytest

from harrierdb.errors import ParamError


@pytest.fixture(scope="session")
def synsets():
    """All WordNet synsets; the tests that need them skip where wordnet-base is not installed."""
    from harrierdb.quality.wordnet import load_synsets

    try:
        return load_synsets()
    except ParamError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def minilm():
    try:
        from harrierdb.embed.dense import SentenceEmbedding

        return SentenceEmbedding(precision="int8")
    except (ImportError, ParamError) as exc:
        pytest.skip(f"MiniLM int8 is not installed: {exc}")


@pytest.fixture(scope="session")
def gloss_vectors(synsets, minilm):
    """MiniLM vectors of 250 random noun glosses and 250 random verb glosses."""
    rng = np.random.default_rng(0)
    out = {}
    for pos in ("n", "v"):
        glosses = [s.gloss for s in synsets if s.pos == pos]
        chosen = [glosses[i] for i in rng.choice(len(glosses), 250, replace=False)]
        out[pos] = np.asarray(minilm.encode_documents(chosen))
    return out


@pytest.fixture
def run_cli(monkeypatch):
    """``harrier`` with the quality subcommands registered: returns the exit status."""
    import harrierdb.cli as cli

    module = "harrierdb.quality.commands"
    if module not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, module))
    return cli.main


@pytest.fixture
def assert_real_png():
    """Check a PNG exists, is large, and matplotlib reads back a picture that is not blank."""
    def check(path, min_bytes=20_000):
        import matplotlib.image

        assert path.is_file() and path.stat().st_size > min_bytes
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 300
        assert pixels[..., :3].std() > 0.05  # not a blank canvas
        assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 50
    return check

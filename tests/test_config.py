import pytest

from videomind.config import Config
from videomind.errors import ConfigError


def test_defaults_validate_and_hash_is_stable():
    a, b = Config(), Config()
    assert a.hash() == b.hash()
    assert a.hash("ingest") != Config.from_dict({}, ["ingest.fps=2"]).hash("ingest")
    assert a.hash("agent") == Config.from_dict({}, ["ingest.fps=2"]).hash("agent")


def test_toml_yaml_json_and_overrides(tmp_path):
    (tmp_path / "c.toml").write_text('[ingest]\nfps = 2\n[agent]\nmax_steps = 3\n')
    (tmp_path / "c.yaml").write_text("ingest:\n  fps: 2\nagent:\n  max_steps: 3\n")
    (tmp_path / "c.json").write_text('{"ingest": {"fps": 2}, "agent": {"max_steps": 3}}')
    for name in ("c.toml", "c.yaml", "c.json"):
        c = Config.from_file(tmp_path / name, overrides=["memory.top_k=7", "models.vlm=Qwen/Qwen2.5-VL-3B-Instruct"])
        assert c.ingest.fps == 2.0 and isinstance(c.ingest.fps, float)
        assert c.agent.max_steps == 3 and c.memory.top_k == 7
        assert c.models.vlm == "Qwen/Qwen2.5-VL-3B-Instruct"


@pytest.mark.parametrize("overrides, key", [
    (["ingest.fps=0"], "ingest.fps"),
    (["ingest.fps=fast"], "ingest.fps"),
    (["memory.segment_seconds=5"], "memory.segment_seconds"),
    (["agent.policy=clever"], "agent.policy"),
    (["ingest.nonsense=1"], "ingest.nonsense"),
    (["models.asr=3"], "models.asr"),
    (["ingest.ocr=maybe"], "ingest.ocr"),
])
def test_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Config.from_dict({}, overrides)


def test_load_with_or_without_a_file(tmp_path):
    (tmp_path / "c.toml").write_text("[ingest]\nfps = 2\n")
    assert Config.load(tmp_path / "c.toml", ["memory.top_k=3"]).ingest.fps == 2.0
    assert Config.load(None, ["memory.top_k=3"]).memory.top_k == 3 and Config.load(None).ingest.fps == 1.0


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[ingest\nfps = ")
    with pytest.raises(ConfigError, match="malformed"):
        Config.from_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Config.from_file(tmp_path / "nope.toml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level"):
        Config.from_file(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        Config.from_dict({}, ["ingest.fps"])

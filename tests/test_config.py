import json

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


@pytest.mark.parametrize("override", ["ingest.chunk_seconds=Infinity", "ingest.chunk_seconds=1e400",
                                      "ingest.fps=NaN", "memory.clip_seconds=-Infinity",
                                      "memory.chapter_seconds=1" + "0" * 400])
def test_non_finite_floats_are_rejected_naming_the_key(override):
    key = override.partition("=")[0]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + ".*finite"):
        Config.from_dict({}, [override])


def test_non_finite_float_in_a_toml_file(tmp_path):
    (tmp_path / "big.toml").write_text("[ingest]\nchunk_seconds = 1e400\n")
    with pytest.raises(ConfigError, match=r"ingest\.chunk_seconds"):
        Config.from_file(tmp_path / "big.toml")


def test_chunk_seconds_has_an_upper_bound():
    assert Config.from_dict({}, ["ingest.chunk_seconds=3600"]).ingest.chunk_seconds == 3600
    assert Config.from_dict({}, ["ingest.chunk_seconds=2"]).ingest.chunk_seconds == 2   # live following
    with pytest.raises(ConfigError, match=r"ingest\.chunk_seconds"):
        Config.from_dict({}, ["ingest.chunk_seconds=1.5"])
    with pytest.raises(ConfigError, match=r"ingest\.chunk_seconds"):
        Config.from_dict({}, ["ingest.chunk_seconds=1e9"])


def test_non_utf8_config_file_is_a_config_error(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes("[ingest]\n# caf\xe9\nfps = 2\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.toml.*UTF-8"):
        Config.from_file(bad)


def test_asr_language_must_be_a_whisper_language():
    assert Config.from_dict({}, ["models.asr=whisper-small", "ingest.asr_language=fr"]).ingest.asr_language == "fr"
    assert Config.from_dict({}, ["ingest.asr_language=en"]).ingest.asr_language == "en"
    with pytest.raises(ConfigError, match=r"ingest\.asr_language.*'xx'"):
        Config.from_dict({}, ["models.asr=whisper-small", "ingest.asr_language=xx"])


@pytest.mark.parametrize("asr", ["whisper-tiny.en", "Systran/faster-whisper-base.en", "/models/small.en/"])
def test_non_english_language_with_an_english_only_model(asr):
    with pytest.raises(ConfigError, match=r"ingest\.asr_language.*English-only"):
        Config.from_dict({}, [f"models.asr={asr}", "ingest.asr_language=fr"])


def test_whisper_language_list_matches_faster_whisper():
    tokenizer = pytest.importorskip("faster_whisper.tokenizer")
    from videomind.config import WHISPER_LANGUAGES

    assert set(WHISPER_LANGUAGES) == set(tokenizer._LANGUAGE_CODES)


def test_python_dash_m_videomind_runs_the_cli():
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "videomind", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "videomind" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "videomind", "ingest", "/nonexistent/video.mp4"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_malformed_yaml_is_a_one_line_error_with_its_position(tmp_path):
    (tmp_path / "bad.yaml").write_text("ingest: {fps: 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*line") as e:
        Config.from_file(tmp_path / "bad.yaml")
    assert "\n" not in str(e.value) and "<unicode string>" not in str(e.value)


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        Config.from_file(tmp_path)


def test_config_suffix_is_case_insensitive(tmp_path):
    (tmp_path / "C.TOML").write_text("[ingest]\nfps = 2\n")
    assert Config.from_file(tmp_path / "C.TOML").ingest.fps == 2.0


def test_null_is_the_empty_default_where_empty_means_none(tmp_path):
    (tmp_path / "c.yaml").write_text("models:\n  vlm:\n")  # YAML's empty value is null
    assert Config.from_file(tmp_path / "c.yaml").models.vlm == ""
    assert Config.from_dict({}, ["models.vlm=null"]).models.vlm == ""
    with pytest.raises(ConfigError, match=r"models\.llm"):
        Config.from_dict({}, ["models.llm=null"])


def test_library_must_not_be_a_file(tmp_path):
    (tmp_path / "lib").write_text("x")
    with pytest.raises(ConfigError, match="'library'.*not a directory"):
        Config.from_dict({}, [f"library={tmp_path / 'lib'}"])
    assert Config.from_dict({}, [f"library={tmp_path / 'new'}"]).library_dir == tmp_path / "new"


def test_a_number_for_a_text_key_says_how_to_quote_it():
    with pytest.raises(ConfigError, match=r"'library'.*quote.*library=\"2024\""):
        Config.from_dict({}, ["library=2024"])


@pytest.mark.parametrize("override, suggestion", [("ingest.fsp=2", "ingest.fps"), ("ingst.fps=2", "ingest"),
                                                  ("memory.topk=3", "memory.top_k")])
def test_an_unknown_key_suggests_the_nearest_one(override, suggestion):
    with pytest.raises(ConfigError, match=f"did you mean {suggestion!r}"):
        Config.from_dict({}, [override])


@pytest.mark.parametrize("name, text", [("c.toml", "[ingest]\nfps = 2\n"), ("c.json", '{"ingest": {"fps": 2}}'),
                                        ("c.yaml", "ingest:\n  fps: 2\n")])
def test_a_byte_order_mark_is_not_content(tmp_path, name, text):
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())  # as Windows Notepad saves UTF-8
    assert Config.from_file(tmp_path / name).ingest.fps == 2.0


@pytest.mark.parametrize("name", ["c.toml", "c.json", "c.yaml"])
def test_an_empty_file_is_the_defaults_in_every_format(tmp_path, name):
    (tmp_path / name).write_text("\n  \n")
    assert Config.from_file(tmp_path / name) == Config()


@pytest.mark.parametrize("name, text", [("c.json", '{"ingest": {"fps": 2, "fps": 3}}'),
                                        ("c.yaml", "ingest:\n  fps: 2\n  fps: 3\n"),
                                        ("s.yaml", "ingest:\n  fps: 2\ningest:\n  ocr: false\n")])
def test_a_key_given_twice_is_refused_not_silently_the_last(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=rf"{name}.*'(fps|ingest)' is given twice"):
        Config.from_file(tmp_path / name)


def test_a_config_path_with_a_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "vm.toml").write_text("[ingest]\nfps = 2\n")
    assert Config.from_file("~/vm.toml").ingest.fps == 2.0


def test_a_yaml_boolean_for_a_text_key_says_to_quote_it(tmp_path):
    (tmp_path / "c.yaml").write_text("models:\n  asr: whisper-small\ningest:\n  asr_language: no\n")  # Norwegian
    with pytest.raises(ConfigError, match=r"ingest\.asr_language.*bool.*quote"):
        Config.from_file(tmp_path / "c.yaml")
    (tmp_path / "c.yaml").write_text('models:\n  asr: whisper-small\ningest:\n  asr_language: "no"\n')
    assert Config.from_file(tmp_path / "c.yaml").ingest.asr_language == "no"


def test_a_toml_date_is_a_config_error_naming_the_key(tmp_path):
    (tmp_path / "c.toml").write_text("[ingest]\nfps = 2024-01-01\n")
    with pytest.raises(ConfigError, match=r"ingest\.fps.*expected float"):
        Config.from_file(tmp_path / "c.toml")


def test_a_negative_temperature_is_refused():
    with pytest.raises(ConfigError, match=r"agent\.temperature"):
        Config.from_dict({}, ["agent.temperature=-0.5"])


def test_sections_built_in_python_are_type_checked_naming_the_key(tmp_path):
    from videomind.config import IngestConfig

    with pytest.raises(ConfigError, match=r"'ingest.fps'.*expected float, got str"):
        Config(ingest=IngestConfig(fps="2"))
    with pytest.raises(ConfigError, match=r"'ingest'.*expected IngestConfig.*from_dict"):
        Config(ingest={"fps": 2})
    c = Config(ingest=IngestConfig(fps=2), library=tmp_path)  # an int for a float, a Path for the library: fine
    assert c.ingest.fps == 2.0 and isinstance(c.ingest.fps, float) and c.library == str(tmp_path)


def test_round_trips_through_dict_and_file(tmp_path):
    c = Config.from_dict({}, ["ingest.fps=2", "models.vlm=some-vlm", "ingest.asr_language=en", "agent.max_steps=3",
                              f"library={tmp_path / 'lib'}"])
    assert Config.from_dict(c.to_dict()) == c and Config.from_dict(c.to_dict()).hash() == c.hash()
    (tmp_path / "c.json").write_text(json.dumps(c.to_dict()))
    assert Config.from_file(tmp_path / "c.json") == c


@pytest.mark.parametrize("override", ["models.allow_download=true", "ingest.asr_threads=2"])
def test_settings_that_shape_nothing_do_not_key_stores(override):
    """They change how fast or from where a model loads, not what it computes (the stage cache ignores them
    too), so changing one must reopen the same memory instead of ingesting the video again."""
    keyed = ("ingest", "memory", "models")
    assert Config.from_dict({}, [override]).hash(*keyed) == Config().hash(*keyed)
    assert Config.from_dict({}, ["ingest.fps=2"]).hash(*keyed) != Config().hash(*keyed)


@pytest.mark.parametrize("override, key, want", [
    ("ingest.fps=.5", "ingest.fps", 0.5), ("ingest.fps=2.", "ingest.fps", 2.0), ("ingest.fps=+2", "ingest.fps", 2.0),
    ("vlm.token_budget=8_192", "vlm.token_budget", 8192), ("agent.max_steps=1e1", "agent.max_steps", 10),
    ("memory.top_k=5.0", "memory.top_k", 5), ("agent.max_steps=+3", "agent.max_steps", 3),
])
def test_set_reads_numbers_as_python_writes_them(override, key, want):
    """--set parses values as JSON, which refuses .5, 2., +2 and 8_192 (they stayed text and the number key refused
    them), and an int key refused 1e1 (JSON's float 10.0)."""
    section, name = key.split(".")
    value = getattr(getattr(Config.from_dict({}, [override]), section), name)
    assert value == want and type(value) is type(want)


@pytest.mark.parametrize("override, msg", [
    ("agent.max_steps=1.5", "expected int"), ("agent.max_steps=2.5e0", "expected int"),
    ("ingest.fps=nan", "finite"), ("ingest.fps=-inf", "finite"), ("agent.max_steps=1e400", "finite"),
    ("memory.top_k=true", "expected int, got bool"), ("ingest.fps=0x10", "expected float"),
    ("ingest.fps=2 fps", "expected float"),
])
def test_set_still_refuses_what_is_no_number_of_the_key_type(override, msg):
    key = override.partition("=")[0]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + ".*" + msg):
        Config.from_dict({}, [override])


def test_yaml_1_1_exponents_without_a_dot_are_numbers(tmp_path):
    """PyYAML follows YAML 1.1, which reads 1e2 (no dot) as a string."""
    (tmp_path / "c.yaml").write_text("ingest:\n  chunk_seconds: 1e2\nvlm:\n  token_budget: 8e3\n")
    c = Config.from_file(tmp_path / "c.yaml")
    assert c.ingest.chunk_seconds == 100.0 and c.vlm.token_budget == 8000 and type(c.vlm.token_budget) is int


@pytest.mark.parametrize("override, hint", [
    ("models.llm=true", "--set reads true as a boolean.*--set 'models.llm=\"true\"'"),
    ("models.llm=1.5", "--set reads 1.5 as a number.*--set 'models.llm=\"1.5\"'"),
])
def test_a_set_value_read_as_the_wrong_type_gets_a_set_hint_not_a_yaml_one(override, hint):
    with pytest.raises(ConfigError, match=hint) as e:
        Config.from_dict({}, [override])
    assert "YAML" not in str(e.value)


@pytest.mark.parametrize("name, text, hint", [
    ("c.toml", "[models]\nllm = 2024\n", 'llm = "2024"'), ("c.toml", "[models]\nllm = true\n", 'llm = "true"'),
    ("c.yaml", "models:\n  llm: 2024\n", 'llm: "2024"'), ("c.json", '{"models": {"llm": true}}', '"llm": "true"'),
])
def test_a_file_value_read_as_the_wrong_type_gets_the_file_formats_quoting(tmp_path, name, text, hint):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=r"models\.llm.*quote it to pass it as text: " + hint) as e:
        Config.from_file(tmp_path / name)
    assert "--set" not in str(e.value)


@pytest.mark.parametrize("name, text", [("c.yaml", "ingest:\n  # fps: 2\n  # asr: false\nagent:\n  max_steps: 4\n"),
                                        ("c.toml", "[ingest]\n[agent]\nmax_steps = 4\n"),
                                        ("c.json", '{"ingest": null, "agent": {"max_steps": 4}}')])
def test_a_section_with_every_key_commented_out_is_the_defaults(tmp_path, name, text):
    """YAML reads such a section as null: it was refused ('expected a table/mapping') where TOML's empty table
    was not."""
    (tmp_path / name).write_text(text)
    c = Config.from_file(tmp_path / name)
    assert c.ingest == Config().ingest and c.agent.max_steps == 4


def test_a_section_set_to_null_on_the_command_line_is_still_refused():
    with pytest.raises(ConfigError, match="'ingest': expected a table"):
        Config.from_dict({}, ["ingest=null"])


def test_an_unknown_agent_backend_is_refused_naming_the_known_ones():
    """It passed validation and failed only when the backend was built (after ingest, for `videomind ask`)."""
    from videomind.backends.registry import BACKENDS
    from videomind.config import AGENT_BACKENDS

    assert set(AGENT_BACKENDS) == set(BACKENDS)
    with pytest.raises(ConfigError, match=r"agent\.backend.*'foo'.*offline, transformers, openai, vlm"):
        Config.from_dict({}, ["agent.backend=foo"])
    assert Config.from_dict({}, ["agent.backend=openai"]).agent.backend == "openai"


@pytest.mark.parametrize("text, want", [
    ("true", True), ("False", False), ("yes", True), ("NO", False), ("on", True), ("Off", False), ("1", True),
    ("0", False), (" yes ", True),
])
def test_set_reads_the_usual_boolean_spellings(text, want):
    """--set ingest.asr=yes (or 1, on) was refused: 'expected bool, got str' (JSON reads 1 as a number)."""
    assert Config.from_dict({}, [f"ingest.asr={text}"]).ingest.asr is want
    assert Config.from_dict({}, [f"memory.hybrid={text}"]).memory.hybrid is want


@pytest.mark.parametrize("text", ["maybe", "2", "y", "", '"true"'])
def test_set_refuses_other_boolean_text_naming_the_key_and_the_words(text):
    with pytest.raises(ConfigError, match=r"ingest\.asr.*true/false, yes/no, on/off or 1/0"):
        Config.from_dict({}, [f"ingest.asr={text}"])


def test_a_config_file_keeps_its_own_boolean_types(tmp_path):
    """A file types its values: a quoted "yes" in TOML or JSON is text, refused for a boolean key; only --set text is
    read by the key's type. YAML reads yes/no itself (YAML 1.1)."""
    (tmp_path / "c.toml").write_text('[ingest]\nasr = "yes"\n')
    with pytest.raises(ConfigError, match=r"ingest\.asr.*expected bool"):
        Config.from_file(tmp_path / "c.toml")
    (tmp_path / "c.yaml").write_text("ingest:\n  asr: no\n")
    assert Config.from_file(tmp_path / "c.yaml").ingest.asr is False
    assert Config.from_file(tmp_path / "c.toml", ["ingest.asr=off"]).ingest.asr is False


@pytest.mark.parametrize("device, want", [
    ("auto", ("auto", None)), ("cpu", ("cpu", None)), ("cuda", ("cuda", None)), ("cuda:0", ("cuda", 0)),
    ("cuda:1", ("cuda", 1)), ("cuda:12", ("cuda", 12)),
])
def test_models_device_takes_a_gpu_index(device, want):
    """A machine with several GPUs is told which with cuda:N; it was refused ('must be auto, cpu or cuda')."""
    from videomind.config import parse_device

    assert Config.from_dict({}, [f"models.device={device}"]).models.device == device
    assert parse_device(device) == want


@pytest.mark.parametrize("device", ["cuda:x", "cuda:-1", "gpu", "cuda:", "cuda:1 ", "CUDA", "cuda:1:2", "cpu:0"])
def test_models_device_refuses_other_forms_naming_the_key_and_the_forms(device):
    from videomind.config import ModelsConfig

    forms = r"models\.device.*auto, cpu, cuda or cuda:N"
    with pytest.raises(ConfigError, match=forms):
        Config.from_dict({"models": {"device": device}})
    with pytest.raises(ConfigError, match=forms):
        Config(models=ModelsConfig(device=device))

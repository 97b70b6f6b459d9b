"""Benchmark loaders and scorers on hand-written records in each benchmark's published schema (fixtures/), and the
EgoSchema loader on the real published files in ../shared."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from eval.benchmarks import NAMES, base, egoschema, get, longvideobench, lvbench, mlvu, needle, videomme
from eval.benchmarks.base import accuracy, extract_choice, predicted_choice

FIX = Path(__file__).parent / "fixtures"


def _touch(root: Path, *names: str) -> Path:
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_bytes(b"")
    return root


# -- answer extraction ------------------------------------------------------------------------------------------
OPTS = ["Paris", "London", "Rome", "Berlin"]


@pytest.mark.parametrize("text, want", [
    ("B", 1), ("b", 1), ("(B)", 1), ("B.", 1), ("B) London", 1), ("Answer: B", 1), ("answer: b", 1),
    ("The answer is B.", 1), ("The correct option is (C).", 2), ("Best option: (D)", 3), ("London", 1),
    ("london.", 1), ("I think it is London.", 1), ("  A  ", 0), ("**B**", 1), ("**B. London**", 1), ("`C`", 2),
    ("B. A man walks to London.", 1), ("The answer is B, not A.", 1),
])
def test_extracts_letters_and_option_text(text, want):
    assert extract_choice(text, OPTS) == want


@pytest.mark.parametrize("text", [
    "", "I am not sure", "Paris or London", "the answer is a bit unclear", "E", "(F)", "Answer: E",
    # several options named: the first one is not the answer
    "A, B", "(A) or (B)", "A) Paris\nB) London", "A. Paris, B. London", "(B) London or (C) Rome",
])
def test_unextractable_answers_are_none_never_a_guess(text):
    assert extract_choice(text, OPTS) is None


def test_option_text_contained_in_a_longer_option_is_not_ambiguous():
    opts = ["red", "dark red", "blue", "green"]
    assert extract_choice("It was dark red.", opts) == 1
    assert extract_choice("red", opts) == 0


@pytest.mark.parametrize("text, options, want", [
    ("B) Paris", OPTS, None),  # the label and the text name two options
    ("b) London (C)", OPTS, None),  # a lowercase leading label and a later (C)
    ("( B )", OPTS, 1),
    ("蓝色", ["红色", "蓝色"], 1),  # option text beyond ASCII (it normalised to nothing)
])
def test_extraction_reads_as_the_agent_does(text, options, want):
    """extract_choice is the agent's reader (option_index); these were read only there, or not at all, before."""
    assert extract_choice(text, options) == want


def test_api_choice_wins_and_text_is_the_fallback():
    assert predicted_choice({"choice": 2, "text": "London"}, OPTS) == (2, "choice")
    assert predicted_choice({"choice": None, "text": "Answer: (B)"}, OPTS) == (1, "extracted")
    assert predicted_choice({"choice": 9, "text": "no idea"}, OPTS) == (None, "none")


def test_score_counts_unextractable_wrong_and_unlabelled_as_none():
    s = base.Sample("q", "x", "v", "Q?", OPTS, answer=1)
    assert base.score(s, 1) is True and base.score(s, None) is False and base.score(s, 0) is False
    assert base.score(base.Sample("q", "x", "v", "Q?", OPTS, answer=None), 1) is None


def test_answer_index_reads_ints_letters_and_texts():
    assert base.answer_index(2, OPTS) == 2
    assert base.answer_index("C", OPTS) == 2 and base.answer_index("(c)", OPTS) == 2
    assert base.answer_index("Rome", OPTS) == 2
    assert base.answer_index("A", ["B", "A", "C"]) == 1  # an option that is itself a letter: text first
    assert base.answer_index("Madrid", OPTS) is None and base.answer_index(None, OPTS) is None
    assert base.answer_index(7, OPTS) is None


def test_repeated_options_are_labelled_in_place_as_ask_compares_them():
    """ask() calls options equal when they differ only in case or whitespace: each later copy is labelled, in its
    own position, so a choice is still an index into the benchmark's options."""
    from videomind.inputs import check_question

    opts = ["a cup", "a pen", "A  cup", "a book", "a cup"]
    got = base.distinct_options(opts)
    assert got == ["a cup", "a pen", "A  cup (same text as A)", "a book", "a cup (same text as A and C)"]
    assert check_question("Q?", got)[1] == got  # VideoMind.ask's own check accepts them
    assert base.distinct_options(OPTS) == OPTS and base.distinct_options([]) == []


# -- clustered standard errors -------------------------------------------------------------------------------------
def test_clustered_standard_error_by_video():
    rows = [{"video": v, "correct": c} for v, c in
            [("a", 1), ("a", 1), ("b", 0), ("b", 0), ("c", 1), ("c", 0)]]
    r = accuracy(rows)
    assert r["accuracy"] == pytest.approx(0.5) and r["n"] == 6 and r["n_videos"] == 3
    # residual sums per video: a: +1, b: -1, c: 0 -> sqrt(3/2 * 2) / 6
    assert r["se"] == pytest.approx((1.5 * 2) ** 0.5 / 6)
    # perfectly correlated answers within a video -> a larger SE than the i.i.d. one
    assert r["se"] > r["se_iid"]
    assert accuracy([{"video": "a", "correct": True}])["se"] is None
    assert accuracy([])["accuracy"] is None


def _rows(samples, preds):
    return [{**s.to_dict(), "pred": p, "correct": base.score(s, p), "error": "", "how": "choice",
             "timings": {"ask_s": 1.0}, "tokens": {"prompt": 10, "completion": 2}} for s, p in zip(samples, preds)]


# -- Video-MME ----------------------------------------------------------------------------------------------------
def test_videomme_rows_options_and_videos(tmp_path):
    _touch(tmp_path, "fFjv93ACGo8.mp4", "Zr2mRkR0Hw4.mkv")
    s = videomme.load(FIX / "videomme/videomme/test.json", tmp_path)
    assert [x.qid for x in s] == ["001-1", "001-2", "301-1", "601-3"]
    assert s[0].options[0] == "Apples." and s[0].answer == 2 and s[0].categories == ["Counting Problem"]
    assert [x.duration_bucket for x in s] == ["short", "short", "medium", "long"]
    assert s[0].video_path.endswith("fFjv93ACGo8.mp4") and s[2].video_path.endswith(".mkv")
    assert s[3].video_path is None  # not downloaded: reported by the runner, not a crash
    assert s[0].split == "wo_subs" and s[0].subtitle is None
    assert videomme.config_overrides("wo_subs") == ["ingest.subtitles=false"]
    agg = videomme.aggregate(_rows(s, [2, 1, 1, None]))
    assert agg["overall"]["accuracy"] == pytest.approx(0.5)
    assert agg["by_duration"]["short"]["accuracy"] == pytest.approx(0.5)
    assert list(agg["by_duration"]) == ["short", "medium", "long"]
    assert agg["by_domain"]["Knowledge"]["n"] == 2


def test_videomme_published_parquet(tmp_path):
    """The published file is test-00000-of-00001.parquet; the same rows as parquet load identically."""
    import json

    import pandas as pd

    rows = json.loads((FIX / "videomme/videomme/test.json").read_text())
    (tmp_path / "videomme").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "videomme" / "test-00000-of-00001.parquet")
    got = videomme.load(tmp_path / "videomme")
    want = videomme.load(FIX / "videomme/videomme/test.json")
    assert [(x.qid, x.options, x.answer, x.duration_bucket) for x in got] == \
        [(x.qid, x.options, x.answer, x.duration_bucket) for x in want]


def test_videomme_with_subtitles():
    s = videomme.load(FIX / "videomme/videomme/test.json", split="w_subs")
    assert s[0].subtitle.endswith("subtitle/fFjv93ACGo8.srt") and s[2].subtitle is None
    assert videomme.config_overrides("w_subs") == []
    with pytest.raises(ValueError):
        videomme.load(FIX / "videomme/videomme/test.json", split="subs")


def test_videomme_nested_release_form_reads_its_own_keys_and_finds_videos_by_url(tmp_path):
    """The JSON release (BradyFU/Video-MME README): one record per video with duration_category, video_category,
    video_sub_category and url, its questions' options under "choices". Videos and subtitles in the download are
    named by the YouTube id of the url (data/<videoID>.mp4, subtitle/<videoID>.srt), not by the numeric video_id."""
    (tmp_path / "videomme").mkdir()
    shutil.copy(FIX / "videomme/videomme_nested.json", tmp_path / "videomme")
    shutil.copytree(FIX / "videomme/subtitle", tmp_path / "subtitle")
    _touch(tmp_path, "data/fFjv93ACGo8.mp4")
    s = videomme.load(tmp_path / "videomme/videomme_nested.json", split="w_subs")
    flat = {x.qid: x for x in videomme.load(FIX / "videomme/videomme/test.json")}  # the same questions, flat
    assert [x.qid for x in s] == ["001-1", "001-2", "301-1"]
    assert [(x.video, x.options, x.answer, x.categories) for x in s] == \
        [(flat[x.qid].video, flat[x.qid].options, flat[x.qid].answer, flat[x.qid].categories) for x in s]
    assert [x.duration_bucket for x in s] == ["short", "short", "medium"]
    assert s[0].meta == {"domain": "Knowledge", "sub_category": "Humanity & History", "video_id": "001"}
    assert s[0].video_path == str(tmp_path / "data/fFjv93ACGo8.mp4") and s[2].video_path is None
    assert s[0].subtitle == str(tmp_path / "subtitle/fFjv93ACGo8.srt")
    agg = videomme.aggregate(_rows(s, [2, 0, 0]))
    assert agg["by_duration"]["short"]["accuracy"] == 1.0 and agg["by_domain"]["Sports Competition"]["n"] == 1


def test_videomme_evaluation_template_without_urls(tmp_path):
    """The official scorer's template (evaluation/output_test_template.json) names a video only by its number and
    says video_subcategory: read as it is, and its videos found when named by that number; in the download's
    layout (data/<YouTube id>.mp4) they cannot be, and that is a clear error, not a run with every video missing."""
    from videomind import InputError

    _touch(tmp_path, "mine/001.mp4", "hf/data/fFjv93ACGo8.mp4")
    (s,) = videomme.load(FIX / "videomme/output_test_template.json", tmp_path / "mine")
    assert (s.qid, s.video, s.answer, s.duration_bucket) == ("001-1", "001", 0, "short")
    assert s.options[0].startswith("It was Moina Michael") and s.meta["sub_category"] == "Humanity & History"
    assert s.video_path == str(tmp_path / "mine/001.mp4")
    with pytest.raises(InputError, match=r"output_test_template\.json.*'001'.*YouTube id.*test-00000-of-00001"
                                         r"\.parquet.*url"):
        videomme.load(FIX / "videomme/output_test_template.json", tmp_path / "hf/data")


def test_videomme_answer_outside_the_options_is_reported(tmp_path, caplog):
    rows = json.loads((FIX / "videomme/videomme/test.json").read_text())
    rows[1]["answer"] = "E"  # 4 options
    (tmp_path / "test.json").write_text(json.dumps(rows))
    with caplog.at_level(logging.WARNING, logger="eval.benchmarks.videomme"):
        s = videomme.load(tmp_path / "test.json")
    assert s[1].answer is None and [x.answer for x in s[2:]] == [1, 3]
    assert "001-2" in caplog.text and "'E'" in caplog.text and "001-1" not in caplog.text


def test_videomme_options_that_are_not_a_list_are_a_clear_error(tmp_path):
    from videomind import InputError

    rows = json.loads((FIX / "videomme/videomme/test.json").read_text())
    rows[2]["options"] = "A. x\nB. y\nC. z\nD. w"
    (tmp_path / "test.json").write_text(json.dumps(rows))
    with pytest.raises(InputError, match=r"test\.json.*301-1.*options"):
        videomme.load(tmp_path / "test.json")


# -- MLVU -------------------------------------------------------------------------------------------------------------
def test_mlvu_dev_tasks_skip_generation_and_find_videos_in_task_folders(tmp_path):
    _touch(tmp_path, "1_plotQA/movie101_66.mp4", "2_needle/needle_32.mp4")
    s = mlvu.load(FIX / "mlvu", tmp_path)
    assert [x.qid for x in s] == ["1_plotQA/0", "1_plotQA/1", "2_needle/0"]  # 8_sub_scene (generation) skipped
    assert s[0].answer == 0 and s[1].answer == 1 and s[2].categories == ["findNeedle"]
    assert all(len(x.options) == 4 and x.split == "dev" for x in s)
    assert s[0].video_path.endswith("1_plotQA/movie101_66.mp4") and s[1].video_path is None
    assert s[0].duration == 246 and s[0].duration_bucket == "3-10min"


def test_mlvu_test_six_options_answer_as_text_or_letter():
    s = mlvu.load(FIX / "mlvu/test-ground-truth/test_mcq_gt.json")
    assert [x.qid for x in s] == ["AR_0", "TQ_7"] and all(x.split == "test" for x in s)
    assert all(len(x.options) == 6 for x in s)
    assert s[0].answer == 1  # "Shoplifting"
    assert s[1].answer == 4  # "(E)"


def test_mlvu_split_picks_its_files_and_refuses_the_other(tmp_path):
    """split="test" of the dev task folder labelled the dev questions "test"."""
    from videomind import InputError

    with pytest.raises(InputError, match="no MLVU test annotations.*--split dev"):
        mlvu.load(FIX / "mlvu", split="test")
    with pytest.raises(InputError, match="no MLVU dev annotations"):
        mlvu.load(FIX / "mlvu/test-ground-truth/test_mcq_gt.json", split="dev")
    with pytest.raises(ValueError, match="split must be one of"):
        mlvu.load(FIX / "mlvu", split="val")
    both = tmp_path / "json"  # the dev task files and the test file in one folder
    shutil.copytree(FIX / "mlvu/json", both)
    shutil.copy(FIX / "mlvu/test-ground-truth/test_mcq_gt.json", both)
    assert {x.split for x in mlvu.load(both, split="test")} == {"test"}
    assert [x.qid for x in mlvu.load(both, split="test")] == ["AR_0", "TQ_7"]
    assert {x.split for x in mlvu.load(both, split="dev")} == {"dev"} and len(mlvu.load(both, split="dev")) == 3


def test_mlvu_numeric_answers_are_option_values_not_indices(tmp_path):
    """The count task writes candidates and answer as numbers (as test_mcq_gt.json does): answer 3 is the option 3,
    not the fourth option; the official scorer compares the answer with each candidate."""
    (tmp_path / "json").mkdir()
    rows = [{"video": "count_1.mp4", "duration": 300, "question": "How many times?", "candidates": [3, 5, 2, 4],
             "answer": 3, "question_type": "count"},
            {"video": "count_2.mp4", "duration": 300, "question": "How many?", "candidates": ["2", "1", "5", "4"],
             "answer": "1", "question_type": "count"},
            {"video": "count_3.mp4", "duration": 300, "question": "How many?", "candidates": [2, 1, 5, 4],
             "answer": 3, "question_type": "count"}]
    (tmp_path / "json/4_count.json").write_text(json.dumps(rows))
    s = mlvu.load(tmp_path)
    assert [x.options for x in s[:2]] == [["3", "5", "2", "4"], ["2", "1", "5", "4"]]
    assert [x.answer for x in s] == [0, 1, None]  # 3 is none of [2, 1, 5, 4]: unlabelled, not the fourth option


def test_duration_buckets_are_in_time_order():
    rows = [{"qid": str(i), "video": str(i), "correct": True, "duration_bucket": base.duration_bucket(d),
             "timings": {"ask_s": 1.0}, "tokens": {"prompt": 1, "completion": 1}}
            for i, d in enumerate([4000, 60, 2000, 300, 1000])]
    assert list(base.aggregate(rows)["by_duration"]) == ["<3min", "3-10min", "10-30min", "30-60min", ">=60min"]


def test_mlvu_m_avg_is_the_mean_of_per_task_accuracy():
    dev = mlvu.load(FIX / "mlvu")
    # plotQA 1/2, findNeedle 1/1 -> M-avg 75 %, while the micro average is 2/3
    agg = mlvu.aggregate(_rows(dev, [0, 3, 0]))
    assert agg["overall"]["accuracy"] == pytest.approx(2 / 3)
    assert agg["m_avg"] == pytest.approx(0.75)
    test = mlvu.load(FIX / "mlvu/test-ground-truth/test_mcq_gt.json")
    both = mlvu.aggregate(_rows(dev + test, [0, 3, 0, 1, 0]))
    assert both["m_avg_by_split"] == {"dev": pytest.approx(0.75), "test": pytest.approx(0.5)}


# -- LongVideoBench ---------------------------------------------------------------------------------------------------
def test_longvideobench_val(tmp_path):
    _touch(tmp_path, "86CxyhFV9MI.mp4")
    s = longvideobench.load(FIX / "longvideobench/lvb_val.json", tmp_path)
    assert [x.qid for x in s] == ["86CxyhFV9MI_0", "Gy9sKTg3JgA_2"]
    assert [len(x.options) for x in s] == [4, 5] and [x.answer for x in s] == [1, 4]
    assert [x.duration_bucket for x in s] == ["600", "3600"] and s[0].categories == ["TOS"]
    assert s[0].subtitle.endswith("subtitles/86CxyhFV9MI_en.json") and s[0].split == "val"
    assert s[1].video_path is None
    agg = longvideobench.aggregate(_rows(s, [1, 0]))
    assert list(agg["by_duration"]) == ["600", "3600"] and agg["by_level"]["L2-Relation"]["accuracy"] == 1.0


def test_longvideobench_na_padding_is_dropped():
    (row,) = longvideobench.load(FIX / "longvideobench/validation_rows.jsonl")
    assert len(row.options) == 4 and longvideobench.PAD not in row.options and row.answer == 1
    assert longvideobench.options_of({"candidates": ["a", "b", "c", "d", "N/A"]}) == ["a", "b", "c", "d"]


def test_longvideobench_split_picks_its_file_and_refuses_another():
    """The dataset folder holds lvb_val.json and lvb_test_wo_gt.json (the same records without correct_choice) side
    by side: split="test" reads the test file, and a file of the other split is refused, not relabelled."""
    from videomind import InputError

    d = FIX / "longvideobench"
    val = longvideobench.load(d, split="val")
    assert [x.qid for x in val] == ["86CxyhFV9MI_0", "Gy9sKTg3JgA_2"] and {x.split for x in val} == {"val"}
    assert [x.qid for x in longvideobench.load(d)] == [x.qid for x in val]  # val by default
    test = longvideobench.load(d, split="test")
    assert [(x.qid, x.split, x.answer) for x in test] == [("Tq1GtcHv0ZM_0", "test", None)]
    assert longvideobench.load(d / "lvb_test_wo_gt.json")[0].split == "test"
    with pytest.raises(InputError, match=r"lvb_val\.json.*val.*--split val.*lvb_test_wo_gt\.json"):
        longvideobench.load(d / "lvb_val.json", split="test")
    with pytest.raises(InputError, match=r"lvb_test_wo_gt\.json.*test"):
        longvideobench.load(d / "lvb_test_wo_gt.json", split="val")
    with pytest.raises(ValueError, match="val"):
        longvideobench.load(d, split="validation")


# -- EgoSchema ----------------------------------------------------------------------------------------------------
def test_egoschema_real_published_files(shared_data, caplog):
    """None of the 20 sample questions is in the public 500-question subset: all load unlabelled, none guessed."""
    d = shared_data / "egoschema"
    assert len(json.loads((d / "subset_answers.json").read_text())) == 500
    with caplog.at_level(logging.INFO, logger="eval.benchmarks.egoschema"):
        s = egoschema.load(d / "questions_sample.json")
    assert len(s) == 20 and all(len(x.options) == 5 for x in s)
    assert s[0].qid == "001934bb-81bd-4cd8-a574-0472ef3f6678" and s[0].options[4].startswith("C takes a break")
    assert all(x.answer is None and x.split == "fullset" for x in s)
    assert "20 of 20 questions have no public answer" in caplog.text
    assert egoschema.load(d / "questions_sample.json", split="subset") == []


def test_egoschema_real_questions_take_their_labels_from_the_answers_file(shared_data, tmp_path, caplog):
    """The real sample questions with an answers file that covers some of them (the published one covers none)."""
    shutil.copy(shared_data / "egoschema/questions_sample.json", tmp_path / "questions.json")
    uids = [q["q_uid"] for q in json.loads((tmp_path / "questions.json").read_text())]
    gold = {uids[0]: 4, uids[5]: 0, uids[19]: "2", "not-a-sample-question": 1}
    (tmp_path / "subset_answers.json").write_text(json.dumps(gold))
    with caplog.at_level(logging.INFO, logger="eval.benchmarks.egoschema"):
        s = egoschema.load(tmp_path)
    assert [(x.qid, x.answer, x.split) for x in s if x.answer is not None] == \
        [(uids[0], 4, "subset"), (uids[5], 0, "subset"), (uids[19], 2, "subset")]
    assert sum(x.answer is None and x.split == "fullset" for x in s) == 17
    assert "17 of 20 questions have no public answer" in caplog.text
    assert [x.qid for x in egoschema.load(tmp_path, split="subset")] == [uids[0], uids[5], uids[19]]
    # the same answers given explicitly, from elsewhere; then no answers file at all
    (tmp_path / "subset_answers.json").rename(tmp_path / "gold.json")
    assert [x.answer for x in egoschema.load(tmp_path, answers=tmp_path / "gold.json")][:6] == \
        [4, None, None, None, None, 0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eval.benchmarks.egoschema"):
        s = egoschema.load(tmp_path)
    assert len(s) == 20 and all(x.answer is None for x in s) and "every question is unlabelled" in caplog.text
    assert egoschema.load(tmp_path, split="subset") == []


def test_egoschema_fixture_scores_the_subset(tmp_path):
    qs = FIX / "egoschema"
    _touch(tmp_path, "0074f737-11cb-497d-8d07-77c3a8127391.mp4")
    s = egoschema.load(qs, tmp_path)
    assert [x.answer for x in s] == [3, 4, None] and [x.split for x in s] == ["subset", "subset", "fullset"]
    assert s[0].video_path and s[1].video_path is None
    agg = egoschema.aggregate(_rows(s, [3, 0, 1]))
    assert agg["overall"]["accuracy"] == pytest.approx(0.5) and agg["n_unlabelled"] == 1


# -- LVBench --------------------------------------------------------------------------------------------------------
def test_lvbench_inline_options_and_multi_label_types(tmp_path):
    _touch(tmp_path, "hFN7ww_8nJs.mp4")
    s = lvbench.load(FIX / "lvbench", tmp_path)
    assert [x.qid for x in s] == ["1", "2", "25"]
    assert s[0].question == "What year appears in the opening caption of the video?"
    assert s[0].options == ["1636", "1366", "1363", "1633"] and s[0].answer == 3
    assert s[1].question.startswith("Why does the rabbit (the one in a red vest)")  # "(the" is not an option
    assert s[1].options[2] == "He hears the phone ring" and s[1].categories == ["reasoning", "event understanding"]
    assert s[0].duration == pytest.approx(68.5 * 60) and s[0].duration_bucket == ">=60min"
    assert s[0].video_path and s[2].video_path is None and s[2].duration is None
    agg = lvbench.aggregate(_rows(s, [3, 0, 2]))
    # a question counts in each of its types (the official script does the same)
    assert agg["by_category"]["reasoning"]["accuracy"] == 0.0
    assert agg["by_category"]["entity recognition"]["accuracy"] == 1.0
    assert agg["overall"]["n"] == 3


def test_lvbench_finds_videos_where_its_download_script_puts_them(tmp_path):
    """LVBench's download.sh runs video2dataset: videos/00000/000000000.mp4 beside 000000000.json naming the url."""
    shard = tmp_path / "videos/00000"
    shard.mkdir(parents=True)
    for n, key in (("000000000", "Mz3tIvfXkLs"), ("000000001", "hFN7ww_8nJs")):
        (shard / f"{n}.mp4").write_bytes(b"")
        (shard / f"{n}.json").write_text(json.dumps({"url": f"https://www.youtube.com/watch?v={key}", "key": n,
                                                     "status": "success"}))
    (shard / "000000002.json").write_text(json.dumps({"url": "https://www.youtube.com/watch?v=failedvideo",
                                                      "status": "failed_to_download"}))  # no .mp4 beside it
    (tmp_path / "videos/00000_stats.json").write_text("{}")
    s = lvbench.load(FIX / "lvbench", tmp_path / "videos")
    assert [Path(x.video_path).name for x in s] == ["000000001.mp4", "000000001.mp4", "000000000.mp4"]


def test_lvbench_bad_line_names_the_file_and_line(tmp_path):
    from videomind import InputError

    lines = (FIX / "lvbench/video_info.meta.jsonl").read_text().splitlines()
    (tmp_path / "video_info.meta.jsonl").write_text("\n".join([lines[0], "", '{"key": "x", "qa": [', *lines[1:]]))
    with pytest.raises(InputError, match=r"video_info\.meta\.jsonl:3\b"):
        lvbench.load(tmp_path)


# -- needle ---------------------------------------------------------------------------------------------------------
def test_needle_samples_and_grounding(tmp_path):
    shutil.copy(FIX / "needle/demo.samples.jsonl", tmp_path)
    _touch(tmp_path, "demo.mp4")
    s = needle.load(tmp_path)
    assert len(s) == 2 and s[0].answer == 1 and s[0].categories == ["spoken_fact"] and s[0].video_path
    assert needle.row_extras(s[0], {"evidence": [{"start": 24.0, "end": 26.0}]}) == {"grounded": True}
    assert needle.row_extras(s[0], {"evidence": [{"start": 2.0, "end": 4.0}]}) == {"grounded": False}


def test_every_benchmark_module_has_the_interface():
    for name in NAMES:
        mod = get(name)
        assert mod.NAME == name and callable(mod.load) and callable(mod.aggregate)
    with pytest.raises(ValueError):
        get("mmlu")


def test_missing_annotation_file_is_a_clear_error(tmp_path):
    from videomind import InputError

    with pytest.raises(InputError, match="no annotation file"):
        egoschema.load(tmp_path / "nowhere")

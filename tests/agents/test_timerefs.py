"""Times named in questions and options, and the heuristic policy answering with them over a real memory store
(the conftest's show: the bridge at 0:40, the password at 1:15, GATE 42 on screen 1:40-1:48, the weather at 2:10,
the balloon at 2:50, the train at 3:35)."""

import pytest

from videomind.agents.heuristic import HeuristicPolicy
from videomind.agents.timerefs import clock_seconds, option_span, question_windows, without_times
from videomind.agents.tools import Toolbox
from videomind.config import Config
from videomind.types import Chunk, TimedText, VideoInfo


@pytest.mark.parametrize("question, window", [
    ("What is shown at 2:30?", (135.0, 165.0)),
    ("What happens between 1:00 and 2:30?", (60.0, 150.0)),
    ("from 00:01:05 to 00:01:40, what is said", (65.0, 100.0)),
    ("What is said after 3:20?", (200.0, None)),
    ("Who spoke before 0:45?", (None, 45.0)),
    ("In the first 5 minutes, who speaks?", (0.0, 300.0)),
    ("in the first minute", (0.0, 60.0)),
    ("after the first minute", (60.0, None)),
    ("during the final 30 seconds", (570.0, 600.0)),
    ("in the last two minutes", (480.0, 600.0)),
    ("At 1:05.5, what", (50.5, 80.5)),
    ("What is on screen at the 5-minute mark?", (285.0, 315.0)),
    ("at the 2 minute mark", (105.0, 135.0)),
    ("in the first 90s", (0.0, 90.0)),
    ("after 2 min", (120.0, None)),
    # no video time: a time of day, a time past the end, a ratio, order words, a number that is no clock
    ("The meeting at 3:00 pm, who came?", None),
    ("What happens at 12:30?", None),
    ("a score of 2:1", None),
    ("Which came first, the bridge or the train?", None),
    ("What is 123:45?", None),
    # a word that merely starts like a unit after "a"/"an" is no amount: "first as" is not "the first 1 s"
    ("What did the host do first as the guests arrived?", None),
    ("Who spoke last as the show ended?", None),
    ("What happened after a meeting?", None),
    ("after two minutes", (120.0, None)),
    ("after an hour", None),  # past the end of this 10-minute video
    # both bounds, open ends, halves, amounts as moments
    ("What is said after 1:00 but before 2:00?", (60.0, 120.0)),
    ("before 2:00 and after 1:00", (60.0, 120.0)),
    ("What is said from 2:00 until the end?", (120.0, None)),
    ("from 2:00 onwards", (120.0, None)),
    ("after 2:00 and before 1:00", None),
    ("What happens in the first half of the video?", (0.0, 300.0)),
    ("in the second half", (300.0, 600.0)),
    ("during the last half hour", (0.0, 600.0)),
    ("What is said at 90 seconds?", (75.0, 105.0)),
    ("What is said at minute 3?", (165.0, 195.0)),
    ("It happened at 5 minutes later", None),
])
def test_a_question_naming_one_time(question, window):
    assert question_windows(question, 600.0) == ([window] if window else [])


def test_halves_and_last_minutes_need_the_end():
    assert question_windows("in the second half") == [] and question_windows("the last 2 minutes") == []
    assert question_windows("the last 2 minutes", 140.0) == [(20.0, 140.0)]


@pytest.mark.parametrize("question, windows", [
    # several moments, each its own window, in question order
    ("What is shown at 1:30 and at 4:00?", [(75.0, 105.0), (225.0, 255.0)]),
    ("What is shown at 1:30 and 4:00?", [(75.0, 105.0), (225.0, 255.0)]),  # "and" joins a range after "between"
    ("Who speaks at 4:00, 0:45 and at 3:00?", [(225.0, 255.0), (30.0, 60.0), (165.0, 195.0)]),
    ("Is the dog seen around 1:00 or 1:20?", [(45.0, 75.0), (65.0, 95.0)]),
    ("What is said at 90 seconds and at the 5-minute mark?", [(75.0, 105.0), (285.0, 315.0)]),
    # "between A and B" is the span from one to the other (what changes between them happens in it)
    ("What changes between 2:10 and 7:45?", [(130.0, 465.0)]),
    # moments mixed with ranges and bounds; a time that starts a range is no moment of its own
    ("What is said at 0:30 and between 2:00 and 2:30?", [(15.0, 45.0), (120.0, 150.0)]),
    ("From 2:00 to 2:30, and at 0:30, who speaks?", [(120.0, 150.0), (15.0, 45.0)]),
    ("What is said at 1:00 until 1:30, and at 3:00?", [(60.0, 90.0), (165.0, 195.0)]),
    ("What is shown at 1:30 and after 8:00?", [(75.0, 105.0), (480.0, None)]),
    ("In the first minute and at 5:00, who speaks?", [(0.0, 60.0), (285.0, 315.0)]),
    # each window once
    ("Is the sign shown at 1:30 and again at 1:30?", [(75.0, 105.0)]),
    ("What is said at 90 seconds and at 01:30?", [(75.0, 105.0)]),
    # a moment past the end is a time of day, as when it is the only one; so is "4:00 pm"
    ("Which is mentioned both at 0:45 and at 12:00?", [(30.0, 60.0)]),
    ("What is said at 12:30 and at 13:00?", []),
    ("What is said at 1:30 and 4:00 pm?", [(75.0, 105.0)]),
])
def test_a_question_naming_several_times(question, windows):
    assert question_windows(question, 600.0) == windows


def test_a_second_moment_is_kept_where_the_video_is_long_enough():
    assert question_windows("Which is mentioned both at 0:45 and at 12:00?", 900.0) == [(30.0, 60.0),
                                                                                          (705.0, 735.0)]


def test_without_times_leaves_the_rest_of_the_question():
    assert without_times("What is said after 3:20?") == "What is said ?"
    assert without_times("Which came first in the first 5 minutes?") == "Which came first in the ?"
    assert without_times("Which came first, the bridge or the train?") == "Which came first, the bridge or the train?"
    assert without_times("What is shown at 1:30 and 4:00, and between 5:00 and 6:00?") == "What is shown , and ?"


def test_option_spans_and_clocks():
    assert clock_seconds("1:02:03") == 3723 and clock_seconds("00:00:07.5") == 7.5
    assert option_span("00:15:23-00:16:10") == (923.0, 970.0)
    assert option_span("(B) 2:05") == (125.0, 125.0) and option_span("from 1:30 to 1:00") == (60.0, 90.0)
    assert option_span("B. 1:00 - 1:30") == (60.0, 90.0)
    for text in ("apple", "12:30 pm", "2:05 and a dog", "platform nine"):
        assert option_span(text) is None


def _answer(memory, question, options=None, until=None):
    *steps, answer = HeuristicPolicy().run(Toolbox(memory, until=until), question, options)
    return answer, steps


def test_options_that_are_times_pick_the_span_of_the_relevant_moment(memory):
    ans, steps = _answer(memory, "When is the secret password said?",
                         ["0:10-0:20", "1:12-1:20", "2:08-2:15", "3:33-3:40"])
    assert ans.choice == 1 and any("pineapple" in e.text for e in ans.evidence)
    assert all(s.args.get("query") != "0:10-0:20" for s in steps)  # times are not searched for as words
    ans, _ = _answer(memory, "When does the train leave from platform nine?", ["0:40", "1:15", "2:10", "3:35"])
    assert ans.choice == 3


def test_a_question_naming_a_time_is_answered_from_that_time(memory):
    """The question's words match nothing in particular; its time does."""
    ans, steps = _answer(memory, "What is said at 2:10?")
    assert "weather in the mountains" in ans.text and 125 <= ans.evidence[0].start <= 135
    assert any(s.tool == "inspect" and s.args["t0"] == 115.0 for s in steps)
    ans, _ = _answer(memory, "What is written on screen at 1:44?")
    assert any("GATE 42" in e.text for e in ans.evidence)
    ans, _ = _answer(memory, "What do we visit in the first minute?", ["the bridge", "the train", "the balloon"])
    assert ans.choice == 0


def test_each_moment_a_question_names_is_searched_and_cited(memory):
    """Only the second moment answers: nothing said at 0:40 (the bridge) is an option, the train at 3:35 is.
    With the first moment alone the rows at 0:40 counted as the most relevant and "the gate" was chosen."""
    ans, steps = _answer(memory, "Which of these is mentioned at 0:40 or at 3:35?",
                         ["the password", "the weather", "the red balloon", "the train", "the gate"])
    assert ans.choice == 3 and any("platform nine" in e.text and e.start == 215.0 for e in ans.evidence)
    assert any(s.tool == "inspect" and s.args["t0"] == 200.0 for s in steps)
    ans, _ = _answer(memory, "What is said at 0:40 and at 2:10?")
    cited = " ".join(e.text for e in ans.evidence)
    assert "stone bridge" in cited and "weather in the mountains" in cited, ans.evidence


def test_a_window_with_nothing_in_it_falls_back_to_the_whole_video(memory):
    ans, steps = _answer(memory, "What is the secret password, after 3:50?", ["apple", "pineapple", "mango"])
    assert ans.choice == 1
    assert steps[0].args.get("t0") == 230.0 and any("t0" not in s.args for s in steps if s.tool != "answer")


def test_a_window_past_the_answer_as_of_time_reads_nothing_after_it(memory):
    ans, steps = _answer(memory, "What is said at 3:35?", until=100.0)
    assert all(e.end <= 100.0 for e in ans.evidence) and "platform" not in ans.text


@pytest.fixture(scope="module")
def talk(tmp_path_factory, embedder):
    """A 12-minute talk whose words name times of day and a game's minutes, besides video times."""
    from videomind.memory.store import VideoMemory

    said = [(20.0, "In the last five minutes of the game, the coach switched to a zone defense."),
            (100.0, "The gift shop closes at 17:45."), (200.0, "Our guide grew up by the sea."),
            (430.0, "The weather was cold and windy all day."), (565.0, "Please subscribe to the channel."),
            (610.0, "The store opens at 9:30 every morning."), (660.0, "That is all for today.")]
    info = VideoInfo("talk.mp4", 720.0, 320, 180, 25.0, True, content_hash="talk")
    mem = VideoMemory.create(tmp_path_factory.mktemp("talk") / "talk", info, Config(), embedder)
    mem.add_chunk(Chunk(0, 0.0, 720.0, [TimedText(t, t + 4.0, s, "speech") for t, s in said]))
    mem.finalize()
    yield mem
    mem.close()


def test_times_of_day_past_the_end_are_options_of_text(talk):
    ans, _ = _answer(talk, "When does the gift shop close?", ["16:00", "17:45", "18:30"])
    assert ans.choice == 1 and "gift shop" in ans.evidence[0].text


def test_a_time_the_video_speaks_of_is_still_found_outside_the_window(talk):
    """"at 9:30" and "the last 5 minutes of the game" are read as video times, but the whole video is searched
    too: the rows in the window win where the question's words match nothing better elsewhere."""
    ans, _ = _answer(talk, "What opens at 9:30?", ["the store", "the museum", "the train station"])
    assert ans.choice == 0 and ans.evidence[0].start == 610.0
    ans, _ = _answer(talk, "What opens at 9:30?")
    assert ans.text == "The store opens at 9:30 every morning."
    question = "What did the coach switch to in the last 5 minutes of the game?"
    ans, _ = _answer(talk, question, ["man-to-man", "zone defense", "full-court press"])
    assert ans.choice == 1 and ans.evidence[0].start == 20.0
    ans, _ = _answer(talk, question)
    assert "zone defense" in ans.text
    ans, _ = _answer(talk, "What is said at 9:30?")  # nothing but the time to go by: the window's sentence
    assert ans.text == "Please subscribe to the channel."


def test_the_last_minute_ends_at_the_answer_as_of_time(memory):
    ans, steps = _answer(memory, "What was said in the last minute?", until=140.0)
    assert steps[0].args["t0"] == 80.0 and steps[0].args["t1"] == 140.0
    assert "weather in the mountains" in ans.text


def test_the_last_minute_of_a_recording_still_being_ingested(tmp_path, embedder):
    """A followed recording has no duration yet: "the last minute" is the last minute ingested so far."""
    from videomind.memory.store import VideoMemory

    said = [(5.0, "Good morning, we start with the budget review."), (100.0, "The budget for marketing is tight."),
            (200.0, "Now the hiring plan for next quarter."), (250.0, "Finally we agreed to move the launch.")]
    mem = VideoMemory.create(tmp_path / "live", VideoInfo("desk-cam", 0.0, 320, 180, 0.0, True, content_hash="live"),
                             Config(), embedder)
    for i, c0 in enumerate(range(0, 300, 30)):
        mem.add_chunk(Chunk(i, float(c0), float(c0 + 30),
                            [TimedText(t, t + 4.0, s, "speech") for t, s in said if c0 <= t < c0 + 30]))
    assert not mem.is_complete and mem.info.duration == 0.0
    ans, steps = _answer(mem, "What was decided in the last minute?")
    assert (steps[0].args["t0"], steps[0].args["t1"]) == (240.0, 300.0) and "launch" in ans.text
    mem.close()


def test_a_sentence_found_by_search_and_by_inspect_is_cited_once(memory):
    ans, _ = _answer(memory, "What is said at 1:00 until 1:30?")
    assert ans.text == "The secret password is pineapple."
    cited = [(e.source, round(e.start), round(e.end), e.text) for e in ans.evidence]
    assert len(cited) == len(set(cited)), cited

from videomind.agents.textmatch import coverage, tokens


def test_numbers_are_single_tokens_written_or_spoken():
    assert tokens("Platform fifty-eight, room 302 and three hundred two") == ["platform", "58", "room", "302", "302"]
    assert coverage("58", "the lucky number is fifty eight") == 1.0
    assert coverage("58", "the lucky number is thirty-eight") == 0.0  # sharing 'eight' is no match
    assert coverage("42", "GATE 42") == 1.0


def test_stop_words_do_not_count():
    assert tokens("What is the secret password?") == ["secret", "password"]
    assert coverage("the", "anything") == 0.0

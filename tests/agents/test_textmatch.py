from videomind.agents.textmatch import coverage, tokens


def test_numbers_are_single_tokens_written_or_spoken():
    assert tokens("Platform fifty-eight, room 302 and three hundred two") == ["platform", "58", "room", "302", "302"]
    assert coverage("58", "the lucky number is fifty eight") == 1.0
    assert coverage("58", "the lucky number is thirty-eight") == 0.0  # sharing 'eight' is no match
    assert coverage("42", "GATE 42") == 1.0


def test_stop_words_do_not_count():
    assert tokens("What is the secret password?") == ["secret", "password"]
    assert coverage("the", "anything") == 0.0


def test_words_of_any_script_stay_whole():
    assert tokens("Café in Zürich, Fußmatte") == ["café", "zürich", "fussmatte"]
    assert tokens("cafe\u0301 ４２") == ["café", "42"]  # decomposed accent, full-width digits (NFKC)
    assert tokens("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]  # vowel signs and viramas are part of the word
    assert tokens("l'hôtel") == ["l", "hôtel"]


def test_accented_letters_tell_words_apart():
    # the ASCII regex read both names as 'j', 'rgen', 'm', 'ller': a full match for the wrong one
    assert coverage("Jürgen Müller", "Unser Kapitän heißt Jürgen Möller.") == 0.5
    assert coverage("Jürgen Möller", "Unser Kapitän heißt Jürgen Möller.") == 1.0
    assert coverage("André Bezier", "Le chef s'appelle André Bézier.") == 0.5


def test_unspaced_scripts_match_inside_runs():
    assert tokens("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert tokens("iphone手机") == ["iphone", "手机"]
    assert coverage("タワー", "東京タワーは夜に光る") == 1.0
    assert coverage("杭州", "会议改在杭州西湖边举行。") == 1.0
    assert coverage("苏州", "会议改在杭州西湖边举行。") == 0.0  # sharing 州 is no match
    assert coverage("京", "東京タワー") == 1.0 and coverage("阪", "東京タワー") == 0.0
    assert coverage("ภาษาไทย", "เราเรียนภาษาไทยทุกวัน") == 1.0

"""The content of synthetic videos: needle templates and word pools, filler sentence parts, scene colours, and
how numbers and times are spoken and written. Data only (plus three small helpers); the timeline is laid out
from it in :mod:`eval.synth.script`.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------------------------
# Content pools. Every needle word was checked to be transcribed correctly by Whisper tiny.en from the espeak-ng
# voice used by render.py (en-us, 130 wpm), in isolation and inside AAC-encoded narration at several alignments
# (words that failed even once were dropped); numbers are spoken as words and answered as digits. The word pools
# of different templates are disjoint, and no filler sentence contains a needle word (a test checks both).
# ---------------------------------------------------------------------------------------------------------------

NUMBER = "number"  # pool marker: a two-digit number (spoken as words in narration, digits on signs)
# Spoken numbers that tiny.en transcribes reliably (it hears "forty nine" as "for the island", "eighty" as "AD",
# "fourteen" as "40").
SPOKEN_NUMBERS = [n for n in range(13, 80) if n % 10 not in (0, 1, 9) and n != 14 and not 40 <= n < 50]
SIGN_NUMBERS = list(range(13, 100))

# (sentence with {x}, question, answer pool)
SPOKEN_FACTS: list[tuple[str, str, list[str] | str]] = [
    ("The secret password is {x}.", "What is the secret password?",
     ["pineapple", "banana", "strawberry", "mango", "avocado", "blueberry", "apple", "orange"]),
    ("My favourite animal is the {x}.", "What is the narrator's favourite animal?",
     ["elephant", "giraffe", "kangaroo", "penguin", "tiger", "rabbit", "monkey", "camel", "turtle"]),
    ("The train to the coast leaves from platform {x}.", "From which platform does the train to the coast leave?",
     NUMBER),
    ("The big meeting is on {x}.", "On which day is the big meeting?",
     ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]),
    ("The parcel was sent to {x}.", "To which city was the parcel sent?",
     ["London", "Paris", "Berlin", "Madrid", "Toronto", "Rome"]),
    ("The spare key is hidden inside the {x}.", "Where is the spare key hidden?",
     ["umbrella", "guitar", "telescope", "piano", "lantern", "camera", "ladder"]),
    ("The museum ticket costs {x} dollars.", "How many dollars does the museum ticket cost?", NUMBER),
    ("Our guide's name is {x}.", "What is the name of the guide?",
     ["Thomas", "Sarah", "Lucy", "David", "Michael", "Maria"]),
    ("The concert is in {x}.", "In which month is the concert?",
     ["January", "March", "April", "August", "September", "October", "November", "December"]),
    ("The lucky number today is {x}.", "What is today's lucky number?", NUMBER),
]

# (sentence with {x}, question with {which} = first/last, pool): three mentions at increasing times.
TEMPORAL: list[tuple[str, str, list[str]]] = [
    ("Next, the tour stops at the {x}.", "Which place did the tour stop at {which}?",
     ["museum", "castle", "library", "market", "stadium", "garden", "cathedral", "zoo", "bridge"]),
    ("The chef now adds the {x}.", "Which ingredient did the chef add {which}?",
     ["onions", "carrots", "potatoes", "tomatoes", "garlic", "mushrooms", "peppers"]),
    ("Now the band plays the {x}.", "Which instrument did the band play {which}?",
     ["drums", "trumpet", "flute", "saxophone", "harmonica", "accordion"]),
    ("The robot picks up the {x}.", "Which object did the robot pick up {which}?",
     ["hammer", "pencil", "blanket", "mirror", "candle", "wallet"]),
    ("The artist now draws a {x}.", "What did the artist draw {which}?",
     ["circle", "triangle", "star", "heart", "diamond", "rocket", "rainbow", "flower", "sailboat", "snowman"]),
]

# (sign text with {x}, question, pool) -- signs use only A-Z, digits and spaces (safe in drawtext).
SIGNS: list[tuple[str, str, list[str] | str]] = [
    ("GATE {x}", "What gate number is shown on the sign?", NUMBER),
    ("ROOM {x}", "Which room number appears on screen?", NUMBER),
    ("EXIT {x}", "Which exit number is shown on screen?", NUMBER),
    ("BUS {x}", "Which bus number is displayed on screen?", NUMBER),
    ("LOCKER {x}", "What locker number appears on the screen?", NUMBER),
    ("HOTEL {x}", "What is the name of the hotel on the sign?",
     ["RIVIERA", "SUNRISE", "SUMMIT", "MAPLE", "LOTUS", "ORCHID", "MONARCH", "ATLAS"]),
    ("CAFE {x}", "What is the name of the cafe on the sign?",
     ["LUNA", "COBALT", "VELVET", "AURORA", "BISTRO", "JUNIPER", "SAFFRON"]),
    ("LANE {x}", "Which lane number is shown on screen?", NUMBER),
]

# Bright needle colours (name, hex). Filler scenes use only the dim colours below, so a full-screen bright
# colour happens only in a needle scene.
NEEDLE_COLORS = [
    ("magenta", "0xFF00FF"), ("orange", "0xFF8000"), ("yellow", "0xFFFF00"), ("cyan", "0x00FFFF"),
    ("lime green", "0x00FF00"), ("pink", "0xFF80C0"), ("red", "0xFF0000"), ("white", "0xFFFFFF"),
]
DIM_COLORS = ["0x1A237E", "0x1B5E20", "0x4E1010", "0x37474F", "0x3E2723", "0x311B92", "0x202020", "0x004D40"]
BOX_COLORS = ["0xE0E0E0", "0xFFD54F", "0x4FC3F7", "0xAED581", "0xF48FB1", "0xFFAB91"]
SCENE_KINDS = ["testsrc2", "smptebars", "mandelbrot", "gradients", "life", "cellauto", "shapes", "color"]

CAPTIONS = [
    "WELCOME", "NATURE", "THE CITY", "OCEAN LIFE", "HISTORY", "SCIENCE", "MUSIC", "SPORTS", "TRAVEL", "COOKING",
    "WEATHER", "THE NEWS", "GARDENING", "SPACE", "MOUNTAINS", "FORESTS", "RIVERS", "THE MARKET", "ART", "BOOKS",
]

# Filler narration: subject + action + time. Everyday words, none of them a needle word.
FILLER_SUBJECTS = [
    "The old man", "A young girl", "The teacher", "My neighbour", "The farmer", "A tall woman", "The old sailor",
    "Our driver", "The baker", "A quiet student", "The doctor", "My brother", "The painter", "A small boy",
]
FILLER_ACTIONS = [
    "walks slowly along the river", "reads a long book", "paints the wooden fence", "waits at the corner",
    "cleans the kitchen floor", "writes a letter to a friend", "waters the plants", "feeds the ducks",
    "climbs the steep hill", "fixes the broken chair", "sings a happy song", "opens the front window",
    "carries a heavy bag", "sweeps the dusty porch", "plants new flowers", "washes the old car",
    "folds the clean clothes", "counts the coins", "rides along the quiet road", "bakes fresh bread",
]
FILLER_TIMES = [
    "every morning", "after lunch", "in the evening", "on a rainy day", "before dinner", "at sunrise",
    "late at night", "during the summer", "on the weekend", "once a week",
]
# Near misses: they share words with the needle questions but carry no answer, so retrieval is non-trivial.
FILLER_DECOYS = [
    "Nobody can remember the old password.", "The meeting room is down the hall.",
    "Many people take the train to work.", "The gallery is very popular with visitors.",
    "The guide speaks three languages.", "Some people keep a spare key with a friend.",
    "The concert hall has a beautiful ceiling.", "The parcel arrived a little late.",
    "The tour starts near the main square.", "The chef likes to cook slowly.",
    "The band practises every week.", "The robot moves very carefully.", "The bus is often crowded.",
    "Everyone hopes for a lucky day.", "The sign near the door is hard to read.",
    "The screen changes colour from time to time.",
]

_ONES = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    """1..99 as English words ('forty two')."""
    if not 0 < n < 100:
        raise ValueError(n)
    if n < 20:
        return _ONES[n]
    return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])


def fmt_time(t: float) -> str:
    """Seconds as M:SS (H:MM:SS from one hour on)."""
    s = int(round(t))
    h, m, sec = s // 3600, (s % 3600) // 60, s % 60
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def needle_words() -> set[str]:
    """Every lower-case word that a needle can plant (used to keep fillers free of them)."""
    words: set[str] = set()
    for _, _, pool in SPOKEN_FACTS + TEMPORAL:
        if pool != NUMBER:
            words.update(w.lower() for w in pool)
    return words

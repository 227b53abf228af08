"""A seeded, synthetic multi-session conversation corpus (two speakers, timestamps).

Every text is made here from the templates and word lists below (written for this benchmark),
so the corpus is the same on every machine for the same seed, and nothing is downloaded.

A corpus is one user's long history with an assistant: many sessions, each a few to a few dozen
turns, a day or more apart. Some sessions are sent again later, as clients do after a timeout:
`exact_repeats` of them verbatim (memcube must report `duplicate`), `edited_repeats` with one
message reworded (a near duplicate, `merged`). mem0's `infer=False` stores every message again.

Run as a script to write a corpus as JSON lines (one session per line):

    python -m bench.corpus --sessions 120 --seed 7 > corpus.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


PEOPLE = _words(
    "Ana Bea Carlos Dana Emeka Farah Goran Hana Ines Jonas Kiri Lars Mei Nadia Oskar Priya Quentin Rosa "
    "Sami Tomas Uma Viktor Wen Ximena Yusuf Zofia Ahmed Birgit Chen Dmitri Elif Femi Greta Hiro Ivana"
)
CITIES = _words(
    "Lisbon Porto Berlin Hamburg Vienna Prague Krakow Madrid Seville Valencia Lyon Marseille Turin Naples "
    "Athens Istanbul Nairobi Lagos Accra Cairo Tunis Casablanca Montreal Toronto Denver Austin Seattle "
    "Oaxaca Bogota Lima Santiago Osaka Kyoto Seoul Taipei Hanoi Manila Jakarta Perth Hobart Auckland"
)
FOODS = _words(
    "ramen dumplings paella risotto tacos falafel pho goulash pierogi curry shakshuka ceviche bibimbap "
    "lasagna empanadas moussaka laksa borscht gnocchi arepas injera tagine sushi pad-thai"
)
HOBBIES = _words(
    "bouldering sourdough baking birdwatching chess trail running pottery watercolour sailing "
    "beekeeping salsa dancing woodworking astrophotography knitting kayaking calligraphy gardening "
    "fencing origami cycling piano"
)
TOOLS = _words(
    "Postgres Kubernetes Terraform Rust Go TypeScript React Kafka Redis Spark Airflow Django FastAPI "
    "Flutter Swift Kotlin Elixir Haskell Grafana Prometheus Snowflake dbt Svelte"
)
PETS = _words("a beagle|two cats|a parrot|a rescue greyhound|a tortoise|an old labrador|three chickens|a ferret", "|")
WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = _words("January February March April May June July August September October November December")
ADJ = _words(
    "quiet busy rainy sunny hectic slow cheerful tiring strange lovely productive chaotic calm long short "
    "frustrating surprising relaxing cold warm"
)

USER_LINES = (
    "I moved to {city} in {month} and I am still finding my way around.",
    "My sister {person} is visiting from {city2} next {weekday}.",
    "I have been trying to get better at {hobby}; I practise about {n} hours a week.",
    "Work has been {adj} lately, we are migrating everything to {tool}.",
    "I cooked {food} for {n} friends on {weekday} and it turned out well.",
    "I am allergic to peanuts, so please keep that in mind for recipes.",
    "We adopted {pet} last {month}, and the flat is a lot livelier now.",
    "My manager {person} asked me to lead the {tool} rollout by {month}.",
    "I ran {n} kilometres this morning before work, which felt {adj}.",
    "Can you remind me what I said about the trip to {city}?",
    "I prefer window seats and early flights when I travel.",
    "My budget for the {city} trip is about {n}00 euros, flights included.",
    "I have a dentist appointment on {weekday} at {hour} o'clock.",
    "I started reading a book about the history of {city} and I love it.",
    "My favourite dish is still {food}, nothing beats it.",
    "I am thinking about learning {tool} properly this year.",
    "The meeting with {person} on {weekday} went {adj}; we agreed on a plan.",
    "I want to sign up for a {hobby} class near my place in {city}.",
    "My daughter turns {n} in {month}, and she wants a party at the zoo.",
    "I usually work from home on {weekday}s and go to the office otherwise.",
    "I sleep badly when it is {adj} outside, any tips?",
    "Our team is hiring {n} engineers who know {tool}.",
    "I switched my phone plan; it is {n} euros a month now.",
    "I booked a table at a {food} place in {city} for {weekday}.",
    "I do not drink coffee after {hour} pm anymore.",
)
ASSISTANT_LINES = (
    "That sounds {adj}. How are you settling in?",
    "Noted. Would you like me to keep a list of places to try in {city}?",
    "Good to know. I will remember that for future suggestions.",
    "{food} is a great choice. Did you follow a recipe or improvise?",
    "Here is a simple plan: {n} short sessions a week, then review after a month.",
    "You mentioned {city} before; do you want to compare it with {city2}?",
    "Sure. Shall I add a reminder for {weekday} at {hour}?",
    "A {tool} migration is a big job. What is the hardest part so far?",
    "That is a solid pace for {n} kilometres. Are you training for a race?",
    "I can suggest a few {hobby} groups that meet on {weekday}s.",
    "Understood, no peanuts. I will suggest alternatives when a recipe uses them.",
    "Congratulations! What name did you give {pet}?",
    "Happy to help plan the party. How many children are coming?",
    "For a budget of {n}00 euros, trains might be cheaper than flights.",
    "Early flights can be tiring; would you like hotel suggestions near the airport?",
    "That is {adj} news. What would you like to do next?",
    "Do you want me to summarise what we discussed about {tool}?",
    "Try keeping the bedroom cool and avoiding screens for an hour before bed.",
)
REWORDS = (
    ("I ", "Honestly, I "),
    ("My ", "So, my "),
    (".", ", by the way."),
)


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str
    chat_time: str
    message_id: str


@dataclass(frozen=True)
class Session:
    session_id: str
    started_at: str
    messages: list[Message] = field(default_factory=list)
    repeat_of: str | None = None
    """For a re-sent session: the session it repeats (verbatim, or with one message reworded)."""
    user_id: str | None = None
    """Whose session (the cube it goes to); None: the run's one user (a generated corpus)."""


def _fill(template: str, rng: random.Random) -> str:
    city, city2 = rng.sample(CITIES, 2)
    return template.format(
        city=city,
        city2=city2,
        person=rng.choice(PEOPLE),
        month=rng.choice(MONTHS),
        weekday=rng.choice(WEEKDAYS),
        hobby=rng.choice(HOBBIES),
        food=rng.choice(FOODS),
        tool=rng.choice(TOOLS),
        pet=rng.choice(PETS),
        adj=rng.choice(ADJ),
        n=rng.randint(2, 12),
        hour=rng.randint(1, 11),
    )


def _session(n: int, start: datetime, rng: random.Random, turns: tuple[int, int]) -> Session:
    messages = []
    at = start
    for k in range(rng.randint(*turns)):
        # Two speakers: the user opens, the assistant answers; a user now and then sends two lines.
        role: Literal["user", "assistant"] = "user" if k % 2 == 0 or rng.random() < 0.15 else "assistant"
        lines = USER_LINES if role == "user" else ASSISTANT_LINES
        text = _fill(rng.choice(lines), rng)
        if role == "user" and rng.random() < 0.35:
            text += " " + _fill(rng.choice(USER_LINES), rng)
        at += timedelta(seconds=rng.randint(5, 240))
        messages.append(Message(role, text, at.isoformat().replace("+00:00", "Z"), f"s{n:05d}-m{k:03d}"))
    return Session(f"session-{n:05d}", start.isoformat().replace("+00:00", "Z"), messages)


def _edited(original: Session, n: int, rng: random.Random) -> Session:
    """The session again with one user message reworded (a near duplicate)."""
    messages = list(original.messages)
    users = [i for i, m in enumerate(messages) if m.role == "user"] or [0]
    i = rng.choice(users)
    old, new = rng.choice(REWORDS)
    m = messages[i]
    messages[i] = Message(m.role, m.content.replace(old, new, 1), m.chat_time, m.message_id)
    return Session(f"session-{n:05d}", original.started_at, messages, repeat_of=original.session_id)


def generate(
    sessions: int = 120,
    *,
    seed: int = 7,
    turns: tuple[int, int] = (8, 44),
    exact_repeats: float = 0.05,
    edited_repeats: float = 0.05,
) -> list[Session]:
    """`sessions` sessions in time order; a share of them re-send an earlier session."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
    out: list[Session] = []
    for n in range(sessions):
        start += timedelta(hours=rng.randint(20, 80), minutes=rng.randint(0, 59))
        roll = rng.random()
        if out and roll < exact_repeats:
            original = rng.choice(out[-20:])
            out.append(Session(f"session-{n:05d}", original.started_at, original.messages, original.session_id))
        elif out and roll < exact_repeats + edited_repeats:
            out.append(_edited(rng.choice(out[-20:]), n, rng))
        else:
            out.append(_session(n, start, rng, turns))
    return out


def snippet_texts(count: int, *, seed: int = 11) -> list[list[Message]]:
    """`count` short conversations (2 to 6 turns), for seeding cubes with many distinct items."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [_session(n, start + timedelta(minutes=17 * n), rng, (2, 6)).messages for n in range(count)]


def to_jsonl(corpus: list[Session]) -> str:
    return "".join(json.dumps(asdict(s), ensure_ascii=False) + "\n" for s in corpus)


def from_jsonl(text: str) -> list[Session]:
    out = []
    for line in text.splitlines():
        if line.strip():
            raw = json.loads(line)
            messages = [Message(**m) for m in raw.pop("messages")]
            out.append(Session(messages=messages, **raw))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sys.stdout.write(to_jsonl(generate(args.sessions, seed=args.seed)))


if __name__ == "__main__":
    main()

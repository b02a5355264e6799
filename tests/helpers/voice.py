"""A stand-in for the executor as the run's parts speak through it (voice.Voice): it keeps
what they said and warned, for the test to read."""


class Voice:
    def __init__(self) -> None:
        self.said: list[str] = []
        self.warned: list[str] = []

    def say(self, message: str) -> None:
        self.said.append(message)

    def warn(self, message: str) -> None:
        self.warned.append(message)

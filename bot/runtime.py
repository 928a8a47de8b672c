"""Everything one process needs, built once from the settings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.config import ConfigError, Settings
from bot.conversation.engine import Engine
from bot.conversation.flows import FlowError, load_flows
from bot.conversation.matching import VocabularyError
from bot.conversation.vocabulary import Vocabulary
from bot.directory.resources import Directory, DirectoryError, load_directory
from bot.messaging.outbound import Outbound, Sender, make_sender
from bot.messaging.service import Service
from bot.storage import crypto
from bot.storage.db import POOL_SIZE, Database


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    directory: Directory
    engine: Engine
    outbound: Outbound
    service: Service
    # The follow-up senders' threads (bot/messaging/dispatch.py), started on first use and kept for
    # the process's life: a thread keeps its own descriptors (SQLite's writer lock) until it ends.
    senders: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.senders = ThreadPoolExecutor(self.settings.send_concurrency, thread_name_prefix="send")

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None, sender: Sender | None = None) -> Runtime:
        clock = clock or Clock()
        crypto.configure(settings.data_key)  # the column types read it: see bot/crypto.py
        try:
            directory = load_directory(settings.resources_path, service_area_miles=settings.service_area_miles)
        except DirectoryError as exc:
            raise ConfigError(f"RESOURCES_PATH: {exc}") from None
        directory.warm()  # in `serve` this runs in the master before it forks: the workers share the rankings
        try:
            flows = load_flows(settings.flows_dir, categories=set(directory.categories))
        except FlowError as exc:
            raise ConfigError(f"FLOWS_DIR: {str(exc).splitlines()[0]}") from None
        try:
            vocabulary = Vocabulary.from_flows(settings.flows_dir, needs=list(directory.categories))
        except VocabularyError as exc:
            raise ConfigError(f"FLOWS_DIR: {exc}") from None
        engine = Engine(flows, vocabulary.matcher, directory, settings.program_timezone, crisis=vocabulary.crisis)
        db = Database(settings.database_url, connections=POOL_SIZE + settings.send_concurrency)  # + the senders
        outbound = Outbound(settings, db, sender or make_sender(settings), clock)
        return cls(settings, clock, db, directory, engine, outbound, Service(settings, db, engine, outbound, clock))

"""Hugging Face Hub ids for `rapgpt import-hf`: `gpt2`, `distilgpt2`, `user/model@revision` -> a checkpoint directory.

A name that is not a directory on disk is fetched through `huggingface_hub`, so its cache (HF_HOME, HF_HUB_CACHE),
offline mode (HF_HUB_OFFLINE), mirror (HF_ENDPOINT) and token (HF_TOKEN or `hf auth login`) work as the user set
them up, and a model already in the cache needs no network. Only the files the import reads are fetched: config.json,
the tokenizer's vocabulary (to check that it is GPT-2's) and one copy of the weights, the first kind in
`WEIGHT_FILES` order that the repository has (GPT-2's own repository also holds TensorFlow, Flax and ONNX copies,
which are left alone). The directory returned is the cache's snapshot of one commit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import HFValidationError, validate_repo_id

from rapgpt.errors import CheckpointError, NetworkError
from rapgpt.interop.hf_import import WEIGHT_FILES, check_gpt2_vocabulary, listed_shards

# The vocabulary files `check_gpt2_vocabulary` reads, in the order it prefers them; one is enough.
VOCABULARY_FILES = ("vocab.json", "tokenizer.json")


@dataclass(frozen=True)
class HubModel:
    """A model repository on the Hub and the revision (branch, tag or commit) to take; None is the default branch."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_hub_id(name: str) -> HubModel | None:
    """`name` read as `repo_id[@revision]`, or None if it cannot be a Hub id (e.g. it is a path like ./x or /x)."""
    repo_id, at, revision = name.partition("@")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return None
    if at and not revision:
        return None
    return HubModel(repo_id, revision or None)


@dataclass(frozen=True)
class Snapshot:
    """A checkpoint fetched from the Hub (or found in the cache): its directory and the commit it holds."""

    model: HubModel
    directory: Path
    commit: str

    def provenance(self) -> dict[str, str]:
        return {"repo_id": self.model.repo_id, "revision": self.model.revision or "main", "commit": self.commit}


def fetch_checkpoint(model: HubModel) -> Snapshot:
    """Download what `import_hf` reads of `model` into the Hugging Face cache (or find it there)."""
    with _hub_errors(model):
        files = _Files(model)
        config = files.fetch("config.json")
        if config is None:
            raise _not_available(model)
        # Every other file comes from the commit that config.json came from, should the branch move meanwhile.
        files.model = HubModel(model.repo_id, config.parent.name)
        snapshot = Snapshot(model, config.parent, config.parent.name)
        for name in VOCABULARY_FILES:
            if files.fetch(name) is not None:
                break
        check_gpt2_vocabulary(snapshot.directory)  # before the weights, which may be large
        for single, index in WEIGHT_FILES:
            if files.fetch(single) is not None:
                return snapshot
            index_file = files.fetch(index)
            if index_file is not None:
                for shard in listed_shards(index_file):
                    if files.fetch(shard) is None:
                        raise _not_available(model, f"weight shard {shard}")
                return snapshot
    if files.uncached:
        raise _not_available(model, "the weights")
    names = ", ".join(name for pair in WEIGHT_FILES for name in pair)
    raise CheckpointError(f"{model} has none of the weight files rapgpt reads ({names}): it is not a PyTorch "
                          "checkpoint")


class _Files:
    """Fetches files of one repository, noting those that the cache lacks while the Hub cannot be asked."""

    def __init__(self, model: HubModel):
        self.model = model
        self.uncached: list[str] = []

    def fetch(self, filename: str) -> Path | None:
        """The cached path of `filename`, downloaded if needed; None if the repository has no such file or, offline,
        the cache does not hold it."""
        try:
            return Path(hf_hub_download(self.model.repo_id, filename, revision=self.model.revision))
        except LocalEntryNotFoundError:
            self.uncached.append(filename)
        except EntryNotFoundError:  # the Hub says the repository has no such file
            pass
        return None


def _not_available(model: HubModel, missing: str | None = None) -> CheckpointError:
    """The one line for a model that the cache lacks (wholly, or `missing`) while the Hub cannot be asked."""
    if constants.HF_HUB_OFFLINE:
        reason, fix = "HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE to download it"
    else:
        reason = f"the Hub ({constants.ENDPOINT}) cannot be reached"
        fix = "connect to the internet (or set HF_ENDPOINT to a mirror) and run again"
    held = "is not in" if missing is None else f"is only partly in ({missing} missing)"
    return CheckpointError(f"{model} {held} the Hugging Face cache ({constants.HF_HUB_CACHE}) and {reason}: {fix}, "
                           "or copy a cache that holds it there, or pass the checkpoint's directory")


@contextlib.contextmanager
def _hub_errors(model: HubModel) -> Iterator[None]:
    """The Hub's refusals as one line that says what to do."""
    login = "log in with `hf auth login` or set HF_TOKEN"
    try:
        yield
    except GatedRepoError as e:
        raise CheckpointError(f"{model.repo_id} is gated on the Hub: accept its conditions on its page, then {login}") \
            from e
    except RepositoryNotFoundError as e:
        raise CheckpointError(f"{model.repo_id} is neither a directory nor a model on the Hugging Face Hub: check the "
                              f"path or the name (a private model needs a token: {login})") from e
    except RevisionNotFoundError as e:
        raise CheckpointError(f"{model.repo_id} has no revision {model.revision!r} on the Hub: name one of its "
                              "branches, tags or commits after the @") from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "an error"
        raise NetworkError(f"the Hugging Face Hub answered {status} for {model}: try again later, or pass the "
                           "checkpoint's directory") from e

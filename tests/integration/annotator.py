"""A simulated person annotating in Label Studio, through the SDK (the calls the UI makes).

It finds a task by its ``al_key``, then labels it (as itself or as another
user), skips it, answers a choice that is not a class, edits or deletes an
earlier annotation. It never goes through the oracle, so the oracle sees the
project exactly as people would leave it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from label_studio_sdk import LabelStudio


class Annotator:
    """One annotator of a project.

    Parameters
    ----------
    url, api_key : str
        The server and an admin token (an admin may annotate on behalf of users).
    project_id : int
        The project to annotate.
    email : str, optional
        Annotate as this user (created on first use); default: the token's user.
    """

    def __init__(self, url: str, api_key: str, project_id: int, email: str | None = None) -> None:
        self.client = LabelStudio(base_url=url, api_key=api_key, max_retries=0)
        self.project_id = project_id
        self.user_id = self._user(email) if email else int(self.client.users.whoami().id)
        self.email = email

    def _user(self, email: str) -> int:
        for user in self.client.users.list():
            if user.email == email:
                return int(user.id)
        name = email.split("@")[0]
        return int(self.client.users.create(email=email, username=name, first_name=name).id)

    def as_user(self, email: str) -> Annotator:
        """The same project, annotated by another person."""
        other = Annotator.__new__(Annotator)
        other.client, other.project_id, other.email = self.client, self.project_id, email
        other.user_id = self._user(email)
        return other

    # ---------------------------------------------------------------- finding tasks

    def tasks(self, key: str) -> list[Any]:
        """Every task carrying ``key`` (more than one means a duplicate)."""
        query = json.dumps({"filters": {"conjunction": "and", "items": [
            {"filter": "filter:tasks:data.al_key", "operator": "equal", "type": "String", "value": key}]}})
        return list(self.client.tasks.list(project=self.project_id, query=query, fields="all", page_size=100))

    def task_id(self, key: str) -> int:
        found = self.tasks(key)
        assert len(found) == 1, f"{len(found)} tasks carry key {key}"
        return int(found[0].id)

    def all_tasks(self) -> list[Any]:
        return list(self.client.tasks.list(project=self.project_id, include="id,data", page_size=1000))

    # ---------------------------------------------------------------- answering

    def _result(self, choice: str) -> list[dict[str, Any]]:
        task_kind = "image" if "<Image" in (self._config() or "") else "text"
        return [{"from_name": "label", "to_name": task_kind, "type": "choices", "value": {"choices": [choice]}}]

    def _config(self) -> str:
        if not hasattr(self, "_config_cache"):
            self._config_cache = self.client.projects.get(id=self.project_id).label_config or ""
        return self._config_cache

    def label(self, key: str, choice: str) -> int:
        """Submit ``choice`` for the item; returns the annotation id."""
        created = self.client.annotations.create(id=self.task_id(key), result=self._result(choice),
                                                 completed_by=self.user_id, was_cancelled=False)
        return int(created.id)

    def skip(self, key: str) -> int:
        """Press *Skip* on the item (a cancelled annotation)."""
        created = self.client.annotations.create(id=self.task_id(key), result=[], was_cancelled=True,
                                                 completed_by=self.user_id)
        return int(created.id)

    def edit(self, annotation_id: int, choice: str) -> None:
        """Change an earlier answer (Update in the UI)."""
        self.client.annotations.update(id=annotation_id, result=self._result(choice))

    def delete(self, annotation_id: int) -> None:
        """Delete an earlier answer."""
        self.client.annotations.delete(id=annotation_id)

    def label_all(self, keys: Iterable[str], truth: Callable[[str], str]) -> dict[str, int]:
        """Label every key with its ground truth; returns ``{key: annotation id}``."""
        return {key: self.label(key, truth(key)) for key in keys}

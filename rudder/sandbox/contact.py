"""Open host contact reads: a user's name by their app-scoped id (contact v3 user get).

Shapes follow `contact.v3.GetUserResponseBody {user: User}`; the name needs one of the basic
contact scopes, and an app without it gets Feishu's access-denied code naming the scopes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rudder.sandbox.envelope import access_denied, authorize, fail, ok
from rudder.sandbox.state import App, User

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

NO_USER_AUTHORITY = 41050
INVALID_PARAM = 99992402
USER_READ_SCOPES = (
    "contact:user.base:readonly",
    "contact:contact.base:readonly",
    "contact:contact:readonly_as_app",
)


def _find(sandbox: Sandbox, app: App, id_type: str, value: str) -> User | None:
    for user in sandbox.users.values():
        ids = {"open_id": user.open_id(app.app_id), "union_id": user.union_id}
        if ids.get(id_type) == value:
            return user
    return None


def user_data(app: App, user: User) -> dict[str, Any]:
    return {
        "open_id": user.open_id(app.app_id),
        "union_id": user.union_id,
        "name": user.name,
        "en_name": user.name,
        "avatar": {
            "avatar_72": f"https://sandbox.invalid/avatar/{user.union_id}/72",
            "avatar_240": f"https://sandbox.invalid/avatar/{user.union_id}/240",
        },
        "status": {"is_activated": True, "is_frozen": False, "is_resigned": False},
    }


async def get_user(request: Request) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    app = authorize(sandbox, request, "contact.user.get")
    if isinstance(app, Response):
        return app
    id_type = request.query_params.get("user_id_type", "open_id")
    if id_type not in ("open_id", "union_id"):
        return fail(INVALID_PARAM, f"user_id_type {id_type!r} is not supported by the sandbox")
    if not app.has_scope(*USER_READ_SCOPES):
        return access_denied(USER_READ_SCOPES)
    user = _find(sandbox, app, id_type, request.path_params["user_id"])
    if user is None:
        return fail(NO_USER_AUTHORITY, "no user authority error")
    return ok({"user": user_data(app, user)})


routes = [Route("/open-apis/contact/v3/users/{user_id}", get_user, methods=["GET"])]

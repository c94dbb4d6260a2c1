"""Request and response bodies of the accounts API."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from planwise.validation import DbStr

USERNAME_PATTERN = r"^[A-Za-z0-9_.@+-]+$"


class UserRegister(BaseModel):
    username: DbStr = Field(min_length=3, max_length=50, pattern=USERNAME_PATTERN)
    password: DbStr = Field(min_length=8, max_length=128)
    full_name: DbStr = Field(min_length=1, max_length=100)


class UserUpdate(BaseModel):
    username: DbStr | None = Field(None, min_length=3, max_length=50, pattern=USERNAME_PATTERN)
    password: DbStr | None = Field(None, min_length=8, max_length=128)
    full_name: DbStr | None = Field(None, min_length=1, max_length=100)


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    role: str
    is_active: bool
    created_at: datetime | None


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth2 token type, not a secret)
    expires_in: int = Field(description="seconds until the token expires")

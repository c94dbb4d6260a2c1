from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from planwise.validation import DbStr


class ReviewCreate(BaseModel):
    place_id: DbStr = Field(min_length=1, max_length=100)
    rating: float = Field(ge=1, le=5, allow_inf_nan=False)
    comment: DbStr | None = Field(None, max_length=5000)


class ReviewUpdate(BaseModel):
    rating: float | None = Field(None, ge=1, le=5, allow_inf_nan=False)
    comment: DbStr | None = Field(None, max_length=5000)


class ReviewPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    place_id: str
    rating: float
    comment: str | None
    created_at: datetime | None

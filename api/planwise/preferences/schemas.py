from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PreferenceIn(BaseModel):
    rating: float = Field(ge=0, le=1, allow_inf_nan=False, description="0 = dislike, 1 = love")


class PreferencePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    category: str
    rating: float
    created_at: datetime | None
    updated_at: datetime | None

"""The extensions, created unbound; ``create_app`` binds each to the app it builds."""

from flask_caching import Cache
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from refapi.api import Api


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
cache = Cache()
api = Api()

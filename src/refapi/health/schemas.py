import marshmallow as ma


class PingSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})


class ChecksSchema(ma.Schema):
    database = ma.fields.String(required=True, metadata={"description": "`ok` or `unavailable`."})
    cache = ma.fields.String(
        required=True,
        metadata={
            "description": "`ok`, or `degraded` when Redis is down and reads use the database."
        },
    )


class ReadinessSchema(ma.Schema):
    status = ma.fields.String(
        required=True, metadata={"description": "`ok`, or `degraded` when the cache is down."}
    )
    checks = ma.fields.Nested(ChecksSchema, required=True)

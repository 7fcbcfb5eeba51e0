import marshmallow as ma


class AuthorizationSchema(ma.Schema):
    authorized = ma.fields.Boolean(required=True, metadata={"description": "Always true."})
    client = ma.fields.String(
        required=True, metadata={"description": "The client the key belongs to."}
    )

"""
The HTTP API's routes, one module per concern, each a class with its own Klein app.

``printerd.tap.makeService`` builds each with the collaborators it needs and
``printerd.http.api.HttpApi`` mounts them all behind one gate.
"""

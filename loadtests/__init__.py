"""Load tests for a drop rush: the locustfile, its load shapes, the drop it seeds and the
books it checks afterwards. ``dropprice loadtest`` drives all of it; see the README's
"Load testing before a drop" section."""

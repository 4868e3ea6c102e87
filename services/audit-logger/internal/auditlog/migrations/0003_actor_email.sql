-- Staff are named by their e-mail too (the ID token's email claim, the
-- envelope actor's email): this column copies the content's actor.email,
-- like the other columns, '' where the actor carried none (every entry
-- before). A constant default rewrites no row, so the append-only triggers
-- are not involved.
ALTER TABLE entries ADD COLUMN actor_email text NOT NULL DEFAULT '';

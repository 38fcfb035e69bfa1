-- Schema version 4: what each call cost, in USD at the model's `price` when
-- it was made (NULL when the model has no price).

ALTER TABLE calls ADD COLUMN cost_usd REAL;

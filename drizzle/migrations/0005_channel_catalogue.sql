-- 0005 channel_catalogue: reserved; the catalogue corrections follow in the next commit.
SELECT 1;

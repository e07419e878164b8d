-- The channel catalogue as Fiuu lists it (FIUU.md §5), for databases an older seed.sql filled.
-- A new database has no rows yet when this runs (the seed comes after the migrations), so it
-- changes nothing there; the seed then writes the corrected catalogue, and the channels it adds
-- (more FPX banks, FPX B2B banks, ShopBack, cash99) reach an upgraded database the same way.
--
-- 1. FPX_B2B_MB2U is not a Fiuu code; Maybank2E's is FPX_M2E. The row is renamed, so its enabled
--    flag, sort order and limits stay as the operator left them; the name changes only if it is
--    still the seeded one. Should an FPX_M2E row exist already (added by hand), that one is kept.
--    Payments not yet paid that name the old code follow it, or their checkout would be refused.
UPDATE payment_methods SET code = 'FPX_M2E',
  name = CASE WHEN name = 'Maybank2e (FPX B2B)' THEN 'Maybank2E (FPX B2B)' ELSE name END
  WHERE code = 'FPX_B2B_MB2U' AND NOT EXISTS (SELECT 1 FROM payment_methods WHERE code = 'FPX_M2E');
--> statement-breakpoint
DELETE FROM payment_methods WHERE code = 'FPX_B2B_MB2U';
--> statement-breakpoint
UPDATE payments SET channel = 'FPX_M2E' WHERE channel = 'FPX_B2B_MB2U' AND status = 'created';
--> statement-breakpoint
-- 2. Minimums. min_amount stays inclusive (the smallest amount accepted); the spec's "> 1.00" is
--    101 sen and Atome's "above RM 10.00" is 1001. A minimum below the spec's is raised to it (the
--    old seed's 100, or anything lower, which Fiuu would refuse anyway); a shop's higher minimum
--    stays. FPX B2B keeps its inclusive RM 2.00.
UPDATE payment_methods SET min_amount = 101
  WHERE min_amount < 101 AND code IN ('credit', 'fpx', 'FPX_MB2U', 'FPX_CIMBCLICKS', 'FPX_PBB', 'FPX_HLB', 'FPX_RHB', 'FPX_AMB',
    'FPX_BIMB', 'TNG-EWALLET', 'BOOST', 'GrabPay', 'ShopeePay', 'MB2U_QRPay-Push', 'RPP_DuitNowQR', 'cash', 'jompay');
--> statement-breakpoint
UPDATE payment_methods SET min_amount = 1001 WHERE code = 'Atome' AND min_amount < 1001;
--> statement-breakpoint
-- 3. Maxima the spec does not give (FPX B2C, e-wallets, DuitNow QR, cash, Atome) go, but only where
--    a row still holds exactly what the old seed wrote: any other value is the shop's own limit and
--    survives. FPX B2B's RM 1,000,000 is the spec's and stays.
UPDATE payment_methods SET max_amount = NULL
  WHERE max_amount = 3000000 AND code IN ('fpx', 'FPX_MB2U', 'FPX_CIMBCLICKS', 'FPX_PBB', 'FPX_HLB', 'FPX_RHB', 'FPX_AMB', 'FPX_BIMB', 'jompay');
--> statement-breakpoint
UPDATE payment_methods SET max_amount = NULL
  WHERE max_amount = 500000 AND code IN ('TNG-EWALLET', 'BOOST', 'GrabPay', 'ShopeePay', 'MB2U_QRPay-Push', 'RPP_DuitNowQR', 'Atome');
--> statement-breakpoint
UPDATE payment_methods SET max_amount = NULL WHERE max_amount = 150000 AND code = 'cash';

-- The channel catalogue as Fiuu lists it (FIUU.md §5): Fiuu's own request codes only. Amounts are
-- minor units (sen).
--
-- min_amount is the smallest amount a channel accepts, inclusive. Where the spec writes "> 1.00"
-- (most Malaysian channels: exactly RM 1.00 may be refused with P14) it holds 101; Atome, "above
-- RM 10.00", holds 1001; FPX B2B, "RM 2.00 – 1,000,000", holds 200. max_amount is NULL unless the
-- spec gives a maximum (only FPX B2B: 100000000) or the shop sets a limit of its own.
--
-- Sort order: the main banks and wallets in a fixed order, the others after them by code (equal
-- sort_order; the listing orders by sort_order, then code).
--
-- Applied after the migrations on every start. Idempotent: an existing row is left as it is, so an
-- operator's changes (enabled, limits, order) survive; migration 0005 corrected the rows an older
-- seed wrote (FPX_B2B_MB2U, minimums, maxima), so a new and an upgraded database hold the same.
INSERT INTO payment_methods (code, name, type, currencies, min_amount, max_amount, enabled, sort_order) VALUES
  ('credit',           'Credit / debit card',            'card',           '{MYR,USD,SGD}', 101,  NULL,       true,  10),
  ('fpx',              'FPX online banking (all banks)', 'online_banking', '{MYR}',         101,  NULL,       true,  20),
  ('FPX_MB2U',         'Maybank2u (FPX)',                'online_banking', '{MYR}',         101,  NULL,       true,  21),
  ('FPX_CIMBCLICKS',   'CIMB Clicks (FPX)',              'online_banking', '{MYR}',         101,  NULL,       true,  22),
  ('FPX_PBB',          'Public Bank (FPX)',              'online_banking', '{MYR}',         101,  NULL,       true,  23),
  ('FPX_HLB',          'Hong Leong Bank (FPX)',          'online_banking', '{MYR}',         101,  NULL,       true,  24),
  ('FPX_RHB',          'RHB Now (FPX)',                  'online_banking', '{MYR}',         101,  NULL,       true,  25),
  ('FPX_AMB',          'AmOnline (FPX)',                 'online_banking', '{MYR}',         101,  NULL,       true,  26),
  ('FPX_BIMB',         'Bank Islam (FPX)',               'online_banking', '{MYR}',         101,  NULL,       true,  27),
  ('FPX_ABB',          'Affin Bank (FPX)',               'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_ABMB',         'Alliance Bank (FPX)',            'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_AGROBANK',     'Agrobank (FPX)',                 'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_BKRM',         'Bank Rakyat (FPX)',              'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_BMMB',         'Bank Muamalat (FPX)',            'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_BOCM',         'Bank of China (FPX)',            'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_BSN',          'BSN (FPX)',                      'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_HSBC',         'HSBC (FPX)',                     'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_KFH',          'Kuwait Finance House (FPX)',     'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_OCBC',         'OCBC Bank (FPX)',                'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_SCB',          'Standard Chartered (FPX)',       'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_UOB',          'UOB (FPX)',                      'online_banking', '{MYR}',         101,  NULL,       true,  28),
  ('FPX_M2E',          'Maybank2E (FPX B2B)',            'online_banking', '{MYR}',         200,  100000000,  true,  30),
  ('FPX_B2B_CIMB',     'CIMB BizChannel (FPX B2B)',      'online_banking', '{MYR}',         200,  100000000,  true,  31),
  ('FPX_B2B_ABB',      'Affin Bank (FPX B2B)',           'online_banking', '{MYR}',         200,  100000000,  true,  32),
  ('FPX_B2B_AGROBANK', 'Agrobank (FPX B2B)',             'online_banking', '{MYR}',         200,  100000000,  true,  32),
  ('FPX_B2B_AMB',      'AmBank (FPX B2B)',               'online_banking', '{MYR}',         200,  100000000,  true,  32),
  ('FPX_B2B_BIMB',     'Bank Islam (FPX B2B)',           'online_banking', '{MYR}',         200,  100000000,  true,  32),
  ('FPX_B2B_BKRM',     'Bank Rakyat (FPX B2B)',          'online_banking', '{MYR}',         200,  100000000,  true,  32),
  ('FPX_B2B_HLB',      'Hong Leong Bank (FPX B2B)',      'online_banking', '{MYR}',         200,  100000000,  true,  32),
  ('FPX_B2B_HSBC',     'HSBC (FPX B2B)',                 'online_banking', '{MYR}',         200,  100000000,  true,  32),
  ('FPX_B2B_PBB',      'Public Bank (FPX B2B)',          'online_banking', '{MYR}',         200,  100000000,  true,  32),
  ('FPX_B2B_RHB',      'RHB (FPX B2B)',                  'online_banking', '{MYR}',         200,  100000000,  true,  32),
  ('FPX_B2B_UOB',      'UOB (FPX B2B)',                  'online_banking', '{MYR}',         200,  100000000,  true,  32),
  ('TNG-EWALLET',      'Touch ''n Go eWallet',           'ewallet',        '{MYR}',         101,  NULL,       true,  40),
  ('BOOST',            'Boost',                          'ewallet',        '{MYR}',         101,  NULL,       true,  41),
  ('GrabPay',          'GrabPay',                        'ewallet',        '{MYR}',         101,  NULL,       true,  42),
  ('ShopeePay',        'ShopeePay',                      'ewallet',        '{MYR}',         101,  NULL,       true,  43),
  ('MB2U_QRPay-Push',  'Maybank QRPay',                  'ewallet',        '{MYR}',         101,  NULL,       true,  44),
  ('ShopBack',         'ShopBack',                       'ewallet',        '{MYR}',         101,  NULL,       true,  45),
  ('RPP_DuitNowQR',    'DuitNow QR',                     'qr',             '{MYR}',         101,  NULL,       true,  50),
  ('cash',             '7-Eleven cash',                  'cash',           '{MYR}',         101,  NULL,       true,  60),
  ('jompay',           'JomPAY',                         'cash',           '{MYR}',         101,  NULL,       true,  61),
  ('cash99',           '99 Speedmart cash',              'cash',           '{MYR}',         101,  NULL,       true,  62),
  ('Atome',            'Atome (buy now, pay later)',     'bnpl',           '{MYR}',         1001, NULL,       true,  70)
ON CONFLICT (code) DO NOTHING;
